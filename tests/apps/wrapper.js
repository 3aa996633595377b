// A wrapper like `npm start`, for the real-PM2 tests: runs http.js as a
// child with `stdio: 'inherit'` and this process's environment (so the child
// carries PM2's app markers and listens on $PORT), and writes the child's pid
// to $CHILD_PID_FILE (atomically: temp file, then rename). Started with
// `--no-pmx` it stays silent, so both it and its child outlive a SIGKILLed
// daemon (pm2-internals §5.4, timeline B). It exits when its child does.
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const child = spawn(process.execPath, [path.join(__dirname, 'http.js')], {
  stdio: 'inherit',
});
const pidFile = process.env.CHILD_PID_FILE;
if (pidFile) {
  fs.writeFileSync(`${pidFile}.tmp`, String(child.pid));
  fs.renameSync(`${pidFile}.tmp`, pidFile);
}
child.on('exit', (code, signal) => process.exit(code === null ? 1 : code));
