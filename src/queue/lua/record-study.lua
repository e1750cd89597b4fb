-- mlsamRecordStudy (queue/series-tracker.ts recordInstance): the study's arrival times and membership, per instance.
-- KEYS[1] study hash, KEYS[2] the study's series set, KEYS[3] study index (zset)
-- ARGV: studyUid, receivedAtMs, studyDate, studyDescription, seriesUid
redis.call('HSETNX', KEYS[1], 'firstReceivedAt', ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'lastReceivedAt') or '0')
if tonumber(ARGV[2]) > last then redis.call('HSET', KEYS[1], 'lastReceivedAt', ARGV[2]) end
redis.call('HSET', KEYS[1], 'studyInstanceUid', ARGV[1], 'status', 'receiving')
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'studyDate', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'studyDescription', ARGV[4]) end
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
