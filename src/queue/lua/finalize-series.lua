-- mlsamFinalizeSeries (queue/settle-outcome.ts, writeIfQuiet): writes the settle outcome only if no instance
-- arrived since the settle read the state.
-- KEYS[1] series (or study) hash; ARGV[1] lastReceivedAt the settle read, ARGV[2..] field, value pairs
-- Returns 1 when written, 0 when an instance arrived meanwhile.
if (redis.call('HGET', KEYS[1], 'lastReceivedAt') or '') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'ignoreCode', 'reason', 'jobId', 'enqueuedBy')
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
