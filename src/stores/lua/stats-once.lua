-- mlsamStatsOnce (stores/stats.ts recordOnce): counts an event's increments once per event id.
-- KEYS[1] seen event ids (zset by time), KEYS[2] counters hash
-- ARGV: eventId, nowMs, seen TTL (ms), then field, increment pairs
-- Returns 1 when counted, 0 when the event was seen before. Old ids are trimmed now and then.
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 0 then return 0 end
for i = 4, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
if math.random() < 0.01 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2] - ARGV[3]) end
return 1
