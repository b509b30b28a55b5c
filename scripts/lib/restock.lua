-- scripts/lib/restock.lua — wrk script of scripts/bench-peers.sh: POST /v1/products/{id}/restock
-- with {"quantity": 1}, product ids round-robin from the file in $AGORA_IDS_FILE (one per
-- line), each wrk thread over its own share of them (so threads never share a product; set
-- $AGORA_WRK_THREADS to wrk's -t), with "Authorization: Bearer $AGORA_TOKEN". done() prints
-- one JSON line: requests, duration, errors, and latency percentiles in microseconds.

local counter = 0

-- Runs in wrk's main state before each thread starts: numbers the threads 0, 1, ...
function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

-- Runs in each thread: keeps every $AGORA_WRK_THREADS-th id, starting at the thread's index.
function init(args)
  local count = tonumber(os.getenv("AGORA_WRK_THREADS")) or 1
  local all = {}
  for line in io.lines(os.getenv("AGORA_IDS_FILE")) do
    if #line > 0 then table.insert(all, line) end
  end
  ids = {}
  for i, id in ipairs(all) do
    if (i - 1) % count == index then table.insert(ids, id) end
  end
  if #ids == 0 then ids = all end
  next_id = 0
  wrk.method = "POST"
  wrk.body = '{"quantity": 1}'
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("AGORA_TOKEN")
end

function request()
  next_id = next_id % #ids + 1
  return wrk.format(nil, "/v1/products/" .. ids[next_id] .. "/restock")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
