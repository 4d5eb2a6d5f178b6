// Initiates the replica set once; AlreadyInitialized (23) means an earlier run did it, and
// Unauthorized (13) that users exist, which rcfleet creates only after initiating the set.
try {
  rs.initiate({_id: "rs0", members: [{_id: 0, host: "192.0.2.10:27017"}]});
} catch (e) {
  if (e.code !== 23 && e.code !== 13) throw e;
}
