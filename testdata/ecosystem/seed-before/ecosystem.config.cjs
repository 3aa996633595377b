// c3-backend's ecosystem file as it was during the incident (docs/incident.md,
// "ecosystem.config.cjs - BEFORE"): instances: 1 without exec_mode, so PM2
// ran it in cluster mode, and restart_delay 1000 next to max_restarts 10, so
// PM2's restart guard could never stop the crash loop.
module.exports = {
  apps: [
    {
      name: 'c3-backend',
      script: 'server.js',
      cwd: __dirname,
      watch: false,
      instances: 1,
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
