// Never finishes evaluating: pm2-doctor must kill it at the deadline.
while (true) {}
