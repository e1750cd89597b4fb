-- mlsamWriteResult (stores/result-store.ts write): the result record, its index entry and the series status.
-- KEYS[1] result key, KEYS[2] result index (zset), KEYS[3] series hash
-- ARGV: record JSON, jobId, mode ('take' | 'own'), index score, seriesUid, series status
-- 'own' writes only while the stored record still belongs to jobId. Returns 1 when written, 0 when superseded.
if ARGV[3] == 'own' then
  local cur = redis.call('GET', KEYS[1])
  if cur then
    local ok, obj = pcall(cjson.decode, cur)
    if ok and type(obj) == 'table' and obj.jobId ~= ARGV[2] then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
local st = redis.call('HGET', KEYS[3], 'status')
if st and st ~= 'receiving' then redis.call('HSET', KEYS[3], 'status', ARGV[6]) end
return 1
