// Exits while being evaluated, before anything is exported.
process.exit(0);
