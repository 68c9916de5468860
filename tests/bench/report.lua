-- report.lua - wrk script for tests/bench/run.sh: one machine-readable line at
-- the end of a run.  No request()/response() hooks, so wrk stays at full speed.
-- errors.status is wrk's "Non-2xx or 3xx responses" count (status > 399).
done = function(summary, latency, requests)
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        "BENCH rps=%.1f p50_us=%d p99_us=%d non2xx=%d sockerr=%d requests=%d\n",
        summary.requests / secs, latency:percentile(50), latency:percentile(99),
        e.status, e.connect + e.read + e.write + e.timeout, summary.requests))
end
