# summary.awk - turns build/bench/results.txt (one line per wrk run) into the
# table of medians and the per-case verdict; exits 1 on non-2xx or socket errors.
# Variables: rss_keel rss_plain rss_nolog (KiB), nolog (0/1), scaling (0/1: the
# keel_1t server, one I/O thread), cases, conns.
function median(key,   n, i, j, t, a) {
    n = cnt[key]
    for (i = 1; i <= n; i++) a[i] = vals[key, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    s = $1; c = $2; n = $3
    for (f = 5; f <= NF; f++) {
        split($f, kvp, "="); v = kvp[2]
        if (kvp[1] == "rps") { k = s SUBSEP c SUBSEP n SUBSEP "rps"; vals[k, ++cnt[k]] = v; rr[s, c, n, $4] = v; rounds[$4] = 1 }
        if (kvp[1] == "p99_us") { k = s SUBSEP c SUBSEP n SUBSEP "p99"; vals[k, ++cnt[k]] = v }
        if (kvp[1] == "cpu_us") { k = s SUBSEP c SUBSEP n SUBSEP "cpu"; vals[k, ++cnt[k]] = v }
        if (kvp[1] == "non2xx") bad[s, c, n] += v
        if (kvp[1] == "sockerr") bad[s, c, n] += v
        if (kvp[1] == "wrk_non2xx" || kvp[1] == "wrk_sockerr") wrkbad[s, c, n] += v
    }
}
END {
    nc = split(cases, C, " "); nn = split(conns, N, " ")
    hdr = sprintf("%-16s %5s %10s %10s %6s %8s %8s %9s %9s %8s %8s %12s %11s", "case", "conns", "keel r/s", "plain r/s",
                  "ratio", "keel p99", "pln p99", "keel bad", "plain bad", "keel RSS", "pln RSS",
                  "keel cpu/req", "pln cpu/req")
    if (nolog) hdr = hdr sprintf(" %10s %6s", "nolog r/s", "ratio")
    if (scaling) hdr = hdr sprintf(" %11s %9s", "1-thread r/s", "2t/1t")
    print hdr
    fail = 0
    for (i = 1; i <= nc; i++) for (j = 1; j <= nn; j++) {
        c = C[i]; n = N[j]
        kr = median("keel" SUBSEP c SUBSEP n SUBSEP "rps"); pr = median("plain" SUBSEP c SUBSEP n SUBSEP "rps")
        kp = median("keel" SUBSEP c SUBSEP n SUBSEP "p99"); pp = median("plain" SUBSEP c SUBSEP n SUBSEP "p99")
        ratio[c, n] = pr > 0 ? kr / pr : 0
        kb = bad["keel", c, n] + 0; pb = bad["plain", c, n] + 0
        if (kb || pb || wrkbad["keel", c, n] || wrkbad["plain", c, n]) fail = 1
        kc = median("keel" SUBSEP c SUBSEP n SUBSEP "cpu"); pc = median("plain" SUBSEP c SUBSEP n SUBSEP "cpu")
        line = sprintf("%-16s %5s %10.0f %10.0f %6.3f %6.2fms %6.2fms %9d %9d %6.1fMB %6.1fMB %10.2fus %9.2fus", c, n,
                       kr, pr, ratio[c, n], kp / 1000, pp / 1000, kb, pb, rss_keel / 1024, rss_plain / 1024, kc, pc)
        if (nolog) {
            nr = median("keel_nolog" SUBSEP c SUBSEP n SUBSEP "rps")
            if (bad["keel_nolog", c, n] || wrkbad["keel_nolog", c, n]) fail = 1
            line = line sprintf(" %10.0f %6.3f", nr, pr > 0 ? nr / pr : 0)
        }
        if (scaling) {
            tr = median("keel_1t" SUBSEP c SUBSEP n SUBSEP "rps")
            if (bad["keel_1t", c, n] || wrkbad["keel_1t", c, n]) fail = 1
            line = line sprintf(" %11.0f %9.2f", tr, tr > 0 ? kr / tr : 0)
        }
        print line
    }
    print "(req/s, p99 and cpu/req are medians over rounds; cpu/req = server user+sys CPU per request;"
    print " bad = non-2xx responses + socket errors summed over rounds; RSS = peak VmHWM)"
    print ""
    for (i = 1; i <= nc; i++) {
        c = C[i]
        kind = c ~ /^\/hello/ ? "typed" : "raw"; target = 1.10
        worst = 99; detail = ""
        for (j = 1; j <= nn; j++) {
            # The spread of the per-round ratios shows how much noise there is.
            lo = 99; hi = 0
            for (r in rounds) if (rr["plain", c, N[j], r] > 0) {
                q = rr["keel", c, N[j], r] / rr["plain", c, N[j], r]
                if (q < lo) lo = q
                if (q > hi) hi = q
            }
            detail = detail sprintf("%s%.3f@c%s (rounds %.2f-%.2f)", j > 1 ? ", " : "", ratio[c, N[j]], N[j], lo, hi)
            if (ratio[c, N[j]] < worst) worst = ratio[c, N[j]]
        }
        printf("%-16s %-5s keel/plain %s  target >= %.2f: %s\n", c, kind, detail, target,
               (worst >= target) ? "MET" : "BELOW")
    }
    if (fail) { print "FAIL: non-2xx responses or socket errors (see build/bench/results.txt)"; exit 1 }
}
