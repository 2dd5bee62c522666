// Builds the http connection pool.
function makeHttpConnection(host) {
  return { host };
}
class Pool {
  acquire() { return makeHttpConnection("x"); }
}
