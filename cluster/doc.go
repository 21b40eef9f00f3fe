// Package cluster is Fluxo's coordination store: ZooKeeper's role in a Kafka
// cluster, played by a NATS server embedded in every broker and a JetStream
// key-value bucket (Bucket, "fluxo_meta") on file storage with SyncAlways, so
// an acknowledged write is on disk.
//
// # What it holds
//
// Now: topic metadata and the producer-id counter. Later: broker
// registrations, the controller and its epoch, partition assignments (leader,
// leader epoch, in-sync set). Record data never goes through NATS.
//
// # Keys
//
//	topics.<base64url(name)>  fluxopb.TopicMetadata (protobuf)
//	producer_ids.next         next unreserved producer id (decimal)
//
// KV keys allow only [-/_=.a-zA-Z0-9] with '.' separating tokens, while a
// Kafka topic name is any 1..249 characters of [a-zA-Z0-9._-]; the name is
// encoded with unpadded base64url, one token without dots, and decoded back
// exactly.
//
// # Rules
//
//   - Every write is a compare-and-set on the key's revision: create expects
//     no live value, update and delete expect the revision read. Lost races
//     are retried a bounded number of times by read-modify-write helpers
//     (UpdateTopic, AllocateProducerIDBlock) and otherwise surface as
//     ErrConflict.
//   - Reads that feed a decision go through one function (Store.readLatest),
//     which asks the stream leader with the STREAM.MSG.GET API, never a KV
//     direct get (any replica may answer those, possibly stale). Watch events
//     are hints: re-read on each. ListTopics is a snapshot for listing.
//   - Later: every leadership (controller, partition leader) is fenced by an
//     epoch stored with it, and written with a CAS against the controller's
//     key revision; broker liveness comes from heartbeats, not KV TTLs.
//
// # Deployment
//
// Only a single node is implemented: one embedded server without a client
// port (the broker connects in-process), bucket replicas 1. Options reserves
// ClusterListen and Peers for the 3-node NATS cluster (routes, replicas 3);
// joining a cluster later is a deliberate migration, not a restart.
//
// Errors wrap a sentinel (ErrTopicExists, ErrTopicNotFound,
// ErrInvalidTopicName, ErrConflict, ErrUnavailable) with the operation name.
package cluster
