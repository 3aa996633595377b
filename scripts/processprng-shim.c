/*
 * A stand-in bcryptprimitives.dll for running Rust's Windows builds under
 * Wine 8 (Debian 12), used only by scripts/windows-test.sh.
 *
 * Rust's std (1.78+) imports ProcessPrng from bcryptprimitives.dll for its
 * random numbers (HashMap seeds). Wine 8 has no such export, so every Rust
 * .exe fails at load time. This DLL exports ProcessPrng on top of
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -static-libgcc \
 *          -o bcryptprimitives.dll processprng-shim.c -ladvapi32
 */
#include <windows.h>

/* RtlGenRandom: exported by advapi32 under this name. */
BOOLEAN NTAPI SystemFunction036(PVOID buffer, ULONG length);

/* Same contract as Windows 10's: fill the buffer, always TRUE on success. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
