// Writes a line every second: the kind of app that dies with its daemon
// (EPIPE on its next write, or the pmx watchdog).
setInterval(() => console.log(`tick ${process.pid} ${Date.now()}`), 1000);
