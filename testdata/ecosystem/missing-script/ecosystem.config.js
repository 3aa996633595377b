// dist/server.js is a build output that was never built; `node` is a
// command found on PATH, which PM2 accepts.
const policy = {
  exec_mode: 'fork',
  max_restarts: 10,
  min_uptime: 5000,
  exp_backoff_restart_delay: 100,
  error_file: 'logs/error.log',
  out_file: 'logs/out.log',
};

module.exports = {
  apps: [
    { name: 'server', script: 'dist/server.js', ...policy },
    { name: 'repl', script: 'node', args: '-e "setInterval(() => {}, 1000)"', ...policy },
  ],
};
