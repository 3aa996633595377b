// Three apps, two ports fought over: api's --port 3000 is web's PORT, and
// admin moves onto 3000 with --env production. DB_PORT is the database's
// port, which every app may share.
const policy = {
  exec_mode: 'fork',
  max_restarts: 10,
  min_uptime: 5000,
  exp_backoff_restart_delay: 100,
};

module.exports = {
  apps: [
    {
      name: 'web',
      script: 'web.js',
      ...policy,
      error_file: 'logs/web-error.log',
      out_file: 'logs/web-out.log',
      env: { PORT: 3000, DB_PORT: 5432 },
    },
    {
      name: 'api',
      script: 'api.js',
      args: '--port 3000',
      ...policy,
      error_file: 'logs/api-error.log',
      out_file: 'logs/api-out.log',
      env: { DB_PORT: '5432' },
    },
    {
      name: 'admin',
      script: 'admin.js',
      ...policy,
      error_file: 'logs/admin-error.log',
      out_file: 'logs/admin-out.log',
      env: { PORT: '4000' },
      env_production: { PORT: '3000' },
    },
  ],
};
