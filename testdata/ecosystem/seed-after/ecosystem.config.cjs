// c3-backend's ecosystem file after the incident's fix (docs/incident.md,
// "Fixed c3-backend Configuration"): exec_mode: 'fork' added, nothing else
// changed, so restart_delay still keeps PM2 from ever giving up.
module.exports = {
  apps: [
    {
      name: 'c3-backend',
      script: 'server.js',
      cwd: __dirname,
      watch: false,
      instances: 1,
      exec_mode: 'fork',
      autorestart: true,
      max_restarts: 10,
      restart_delay: 1000,
      env: {
        NODE_ENV: 'production',
        PORT: 7780,
      },
    },
  ],
};
