"""The storage contract the router and the learning loop share.

Neither ``router`` nor ``reward_ingest`` imports the other; what one writes and the
other reads is defined here, once:

- ``keys``: every Redis key, stream and channel name;
- ``streams``: reading a stream after an id (Redis ``XRANGE``) and ``MemoryStream``,
  the in-process stream behind every ``memory://`` log;
- ``group_commit``: many callers' writes in batches, one round trip in flight;
- ``snapshots``: publishing a policy snapshot (Redis and in process);
- ``backends``: which backend a store URL names, and the Redis clients the stores open.
"""
