// Writes straight to file descriptor 1, around console.log, so the output
// pm2-doctor reads is not JSON.
require('fs').writeSync(1, 'this is not json\n');
module.exports = { apps: [] };
