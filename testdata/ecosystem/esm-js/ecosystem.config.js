// A .js ecosystem file in a "type": "module" package: require() refuses it
// on Node 20 (ERR_REQUIRE_ESM), so it is imported instead.
export default {
  apps: [{ name: 'svc', script: 'svc.js', instances: 2 }],
};
