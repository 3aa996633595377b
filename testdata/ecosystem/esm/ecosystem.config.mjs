// An ES module ecosystem file: its default export is the config. Functions
// (like onReady) are dropped, as JSON.stringify drops them.
const policy = {
  max_restarts: 10,
  min_uptime: '5s',
  exp_backoff_restart_delay: 100,
};

export default {
  apps: [
    {
      name: 'api',
      script: './api.mjs',
      instances: 'max',
      ...policy,
      error_file: 'logs/api-error.log',
      out_file: 'logs/api-out.log',
      env: { PORT: 8080 },
      onReady: () => console.log('ready'),
    },
  ],
};
