-- mlsamRecordInstance (queue/series-tracker.ts recordInstance): one received instance into its series' state.
-- KEYS[1] series hash, KEYS[2] the series' instances hash, KEYS[3] series index (zset)
-- ARGV: studyUid, seriesUid, seriesDir, callingAeTitle, receivedAtMs, sopInstanceUid, instance JSON
-- Returns 1 when the instance is new to the series, 0 when it was known.
redis.call('HSETNX', KEYS[1], 'firstReceivedAt', ARGV[5])
local last = tonumber(redis.call('HGET', KEYS[1], 'lastReceivedAt') or '0')
if tonumber(ARGV[5]) > last then redis.call('HSET', KEYS[1], 'lastReceivedAt', ARGV[5]) end
redis.call('HSETNX', KEYS[1], 'callingAeTitle', ARGV[4])
redis.call('HSET', KEYS[1], 'studyInstanceUid', ARGV[1], 'seriesInstanceUid', ARGV[2], 'seriesDir', ARGV[3], 'status', 'receiving')
local added = redis.call('HSET', KEYS[2], ARGV[6], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
return added
