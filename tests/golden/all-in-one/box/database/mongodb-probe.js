// Rendered by rcfleet: writes whether MongoDB has a writable PRIMARY, every 15 s, for the node
// exporter's textfile collector (node-exporter/textfile/mongodb.prom on this host). `hello`
// needs no login, so this holds no credential. mongosh runs with --nodb: it connects here,
// and again after a failure, so a stopped mongod is reported as 0 instead of ending the probe.
const fs = require('fs');
const uri = "mongodb://127.0.0.1:27017/?directConnection=true&serverSelectionTimeoutMS=5000";
const replicaSet = "rs0";
const file = '/textfile/mongodb.prom';
let client = null;
while (true) {
  let primary = 0;
  try {
    if (client === null) {
      client = new Mongo(uri);
    }
    primary = client.getDB('admin').hello().isWritablePrimary === true ? 1 : 0;
  } catch (error) {
    client = null;
  }
  fs.writeFileSync(file + '.tmp',
    '# HELP rcfleet_mongodb_writable_primary 1 when the replica set has a writable PRIMARY (hello.isWritablePrimary).\n' +
    '# TYPE rcfleet_mongodb_writable_primary gauge\n' +
    `rcfleet_mongodb_writable_primary{replica_set="${replicaSet}"} ${primary}\n`);
  fs.renameSync(file + '.tmp', file);
  sleep(15000);
}
