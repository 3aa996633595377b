// Throws while being evaluated, as a config reading a missing secret does.
// What it prints must not end up in pm2-doctor's JSON output.
console.log('loading the ecosystem file');
if (!process.env.PM2_DOCTOR_FIXTURE_DATABASE_URL) {
  throw new Error('DATABASE_URL is not set');
}
module.exports = { apps: [] };
