// Initiates the replica set once; AlreadyInitialized (23) means an earlier run did it.
try {
  rs.initiate({_id: "rs0", members: [{_id: 0, host: "192.0.2.5:27017"}]});
} catch (e) {
  if (e.code !== 23) throw e;
}
