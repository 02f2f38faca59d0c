"""Turns benches/run.sh's result lines into BENCHMARKS.md."""
import datetime
import json
import os
import sys

rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        rows[r["scenario"]] = r
seconds = sys.argv[2]
# The run before this one (benches/last-results.jsonl before it is
# replaced): a rate that moved more than 15 % between the two runs, on the
# same kind of machine, is shown as the range of both.
previous = {}
if len(sys.argv) > 3 and os.path.exists(sys.argv[3]):
    for line in open(sys.argv[3]):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            previous[r["scenario"]] = r


def same_machine(part):
    now, then = rows.get(f"machine_{part}"), previous.get(f"machine_{part}")
    keys = ("cores", "model", "daemon_cpus", "load_cpus")
    return bool(now and then) and all(now.get(k) == then.get(k) for k in keys)


def rate(name, part="main"):
    """A rate, or the range of this run's and the previous run's when they
    differ by more than 15 % on the same machine."""
    value = rows.get(name, {}).get("rate", 0.0)
    before = previous.get(name, {}).get("rate")
    if before and value and same_machine(part) and before != value and abs(value / before - 1) > 0.15:
        lo, hi = sorted((value, before))
        return f"{value:,.0f} (range {lo:,.0f}–{hi:,.0f} over two runs)"
    return f"{value:,.0f}"


def machine(part):
    m = rows.get(f"machine_{part}")
    if not m:
        return ""
    pinned = (f"admind and its bare baseline pinned to CPU {m['daemon_cpus']}, the load generator to CPU {m['load_cpus']} (taskset) for the read figures"
              if part == "main" else "nothing pinned: the replicas, PostgreSQL and the load share the machine")
    return (f" Machine: {m['cores']} × {m['model']}, {m['memory_gib']} GiB, 1-minute load {m['load1_before']:.2f} before the run{inodes(m)}, "
            f"{pinned}; {m['date']}.")


def inodes(m):
    """The files' inodes the kernel held before the run, when recorded."""
    n = m.get("inodes_cached")
    return f", {n:,} inodes cached" if n is not None else ""


def g(name, key, default=0.0):
    return rows.get(name, {}).get(key, default)


def ratio(a, b):
    return a / b if b else 0.0


def mark(ok):
    return "✔" if ok else "✘"


mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
out = []
out.append("# Benchmarks\n")
out.append(
    ("Measured by the last full run of `benches/run.sh` (the hostile-load section has its own date): "
     if os.environ.get("BENCH_ONLY") in ("hostile", "postgres", "policy", "slow", "layers", "console", "transfers") else f"Measured by `benches/run.sh` on {datetime.date.today()}: ")
    + f"{os.cpu_count()} cores, "
    f"{mem_gib:.0f} GiB of memory, loopback, release build, {seconds} s per figure, "
    "64 connections unless said. Every baseline was measured in the same run. "
    "Raw lines: `benches/last-results.jsonl`." + machine("main") + "\n"
)
out.append("| figure | admind | baseline (same run) | ratio | goal |")
out.append("|---|---|---|---|---|")
o, bo = g("owner", "rate"), g("bare_owner_size", "rate")
out.append(f"| `GET /v1/accounts/{{a}}/owner`, req/s | {rate('owner')} | bare hyper, same body size: {rate('bare_owner_size')} | {ratio(o, bo):.2f} | ≥ 0.6 {mark(ratio(o, bo) >= 0.6)} |")
m, bm = g("members_20", "rate"), g("bare_members_size", "rate")
out.append(f"| `GET /v1/accounts/{{a}}/members` (20 members), req/s | {rate('members_20')} | bare hyper, same body size: {rate('bare_members_size')} | {ratio(m, bm):.2f} | ≥ 0.4 {mark(ratio(m, bm) >= 0.4)} |")
cm, am = g("console_members_20", "rate"), g("members_20", "rate")
rounds = sorted(
    (ratio(g(f"console_round_api_{r}", "rate"), g(f"console_round_page_{r}", "rate")), r)
    for r in range(1, 10) if f"console_round_page_{r}" in rows
)
if rounds:
    # A console run (BENCH_ONLY=console): the median round's pair.
    _, r = rounds[len(rounds) // 2]
    cm, am = g(f"console_round_page_{r}", "rate"), g(f"console_round_api_{r}", "rate")
    each = ", ".join(f"{x:.2f}" for x, _ in sorted(rounds, key=lambda p: p[1]))
    out.append(f"| Team members page (20 members), req/s, median of {len(rounds)} alternating rounds (each round's ratio: {each}) | {cm:,.0f} | `GET .../members` of the API, same round: {am:,.0f} | {ratio(am, cm):.2f}× the API's time | ≤ 1.5× {mark(ratio(am, cm) <= 1.5)} |")
elif cm:
    # Server time per request ~ 1/rate at the same concurrency: the page's
    # time beside the API's is the inverse ratio of their rates.
    out.append(f"| Team members page (20 members), req/s | {rate('console_members_20')} | `GET .../members` of the API, same run: {am:,.0f} | {ratio(am, cm):.2f}× the API's time | ≤ 1.5× {mark(ratio(am, cm) <= 1.5)} |")
cb, ab = g("console_big_first", "rate"), g("api_big_first_50", "rate")
if cb:
    out.append(f"| Team members page, first of 100,000-member account, req/s | {cb:,.0f} | API's first page of 50, same run: {ab:,.0f} | {ratio(ab, cb):.2f}× the API's time | ≤ 1.5× {mark(ratio(ab, cb) <= 1.5)} |")
w = g("console_page_weight", "total_bytes")
if w:
    out.append(f"| console first load (Team members page, CSS, htmx), gzip | {w / 1024:.1f} KB (page {g('console_page_weight', 'html_bytes') / 1024:.1f}, CSS {g('console_page_weight', 'css_bytes') / 1024:.1f}, htmx {g('console_page_weight', 'js_bytes') / 1024:.1f}) | — | | ≤ 60 KB {mark(w <= 60 * 1024)} |")
one = g("sled_one_writer", "rate")
for c in (1, 16, 64):
    t = g(f"transfers_{c}", "rate")
    base = g(f"sled_batched_{c}", "rate") if c > 1 else one
    label = "sled tx + flush, one writer" if c == 1 else f"sled tx, flushes shared by {c} writers"
    goal = f"≥ 0.5 {mark(ratio(t, base) >= 0.5)}" if c == 64 else ""
    out.append(f"| durable owner transfers/s, {c} client(s) | {rate(f'transfers_{c}')} ({ratio(t, one):.1f}× one-writer) | {label}: {base:,.0f} | {ratio(t, base):.2f} | {goal} |")
p99 = g("transfers_64", "p99_ms")
out.append(f"| p99 latency of transfers, 64 clients | {p99:.2f} ms (p50 {g('transfers_64', 'p50_ms'):.2f} ms) | — | | ≤ 10 ms {mark(p99 <= 10)} |")
xr = [r for r in range(1, 20) if f"transfers_round_64_{r}" in rows]
if xr:
    # A transfers run (BENCH_ONLY=transfers): each round beside the ceiling
    # measured right after it; the median round's figures, every round's
    # ratio and the range of the p99s.
    each = [(ratio(g(f"transfers_round_64_{r}", "rate"), g(f"sled_batched_round_64_{r}", "rate")), r) for r in xr]
    _, r = sorted(each)[len(each) // 2]
    t, base = g(f"transfers_round_64_{r}", "rate"), g(f"sled_batched_round_64_{r}", "rate")
    p99s = sorted(g(f"transfers_round_64_{x}", "p99_ms") for x in xr)
    rates = sorted(g(f"transfers_round_64_{x}", "rate") for x in xr)
    mp99 = g(f"transfers_round_64_{r}", "p99_ms")
    out.append(
        f"| durable owner transfers/s, 64 clients, median of {len(xr)} rounds (each round's ratio: {', '.join(f'{x:.2f}' for x, _ in each)}; "
        f"rates {rates[0]:,.0f}–{rates[-1]:,.0f}; p99 {p99s[0]:.1f}–{p99s[-1]:.1f} ms) | {t:,.0f} (p99 {mp99:.1f} ms) | "
        f"sled tx, flushes shared by 64 writers, same round: {base:,.0f} | {ratio(t, base):.2f} | ≥ 0.5 {mark(ratio(t, base) >= 0.5)}, p99 ≤ 10 ms {mark(mp99 <= 10)} |"
    )
added = g("hook_rhai_script", "median_us") - g("hook_no_handler", "median_us")
out.append(
    f"| `before_owner_change` Rhai policy, added median | {added:.2f} µs (script {g('hook_rhai_script', 'median_us'):.2f} µs) | "
    f"compiled plugin {g('hook_compiled_plugin', 'median_us'):.2f} µs, no handler {g('hook_no_handler', 'median_us'):.2f} µs | | ≤ 5 µs {mark(added <= 5)} |"
)
sp0, sp40 = g("transfers_64_slow_policy_0", "rate"), g("transfers_64_slow_policy_40", "rate")
if sp40:
    out.append(
        f"| transfers/s of 63 accounts while the 64th account's `before_owner_change` policy spends 40 ms (busy) per call | {sp40:,.0f} "
        f"(p99 {g('transfers_64_slow_policy_40', 'p99_ms'):.1f} ms; the slow account: {rows['transfers_64_slow_policy_40'].get('slow_account_ops', 0)} transfers) | "
        f"the same run without the policy: {sp0:,.0f} | {ratio(sp40, sp0):.2f} | ≥ 0.9 {mark(ratio(sp40, sp0) >= 0.9)} |"
    )
rp99 = g("reload", "p99_ms")
failed = g("reload", "failed_requests")
out.append(f"| script save → new decision, p99 over {g('reload', 'saves')} saves under read load | {rp99:.1f} ms (p50 {g('reload', 'p50_ms'):.1f} ms), {failed} failed of {g('reload', 'reads'):,} reads | — | | ≤ 250 ms, 0 failed {mark(rp99 <= 250 and failed == 0)} |")
wh, hm = g("webhooks", "rate"), g("hmac_verify_alone", "rate")
out.append(f"| verified, deduplicated, committed webhook deliveries/s, 64 senders | {wh:,.0f} (p99 {g('webhooks', 'p99_ms'):.1f} ms) | HMAC sign + verify alone, all cores: {hm:,.0f}/s | {ratio(wh, hm):.3f} | report |")
def median_rate(prefix):
    rates = sorted(r["rate"] for k, r in rows.items() if k.startswith(prefix) and "rate" in r)
    return rates[len(rates) // 2] if rates else 0.0, rates
rec_on, on_all = median_rate("transfers_64_guard_record_true")
rec_off, off_all = median_rate("transfers_64_guard_record_false")
if rec_on:
    overhead = 1 - ratio(rec_on, rec_off)
    runs = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)
    dropped = sum(r.get("dropped", 0) for name, r in rows.items() if name.startswith("records_dropped_true"))
    out.append(f"| durable transfers/s, 64 clients, a `before_owner_change` policy loaded, hook calls recorded (median of {len(on_all)} alternating runs: {runs(on_all)}; records dropped over all runs: {dropped:,.0f}) | {rec_on:,.0f} | the same, recording off ({runs(off_all)}): {rec_off:,.0f} | overhead {overhead * 100:.1f} % | ≤ 5 %, none dropped {mark(overhead <= 0.05 and dropped == 0)} |")
rp, lv = g("replay", "replay_rate"), g("replay", "live_rate")
if rp:
    out.append(f"| replay of a policy over {rows['replay'].get('events', 0):,} recorded calls, events/s (one core) | {rp:,.0f} | live dispatch of the same policy on the same events: {lv:,.0f} | {ratio(rp, lv):.2f} | report |")
    rt = rows["replay"].get("retention_pass_ms")
    if rt is not None:
        n = rows["replay"].get("events", 0)
        known = rows["replay"].get("retention_pass_known_ms")
        if known is not None:
            out.append(f"| retention's pass over the record when nothing is over (counts every call of {n:,}, pages of 256), ms (one core): each page's count known from its writing | {known:,.2f} | the first pass after a start, every page read once: {rt:,.1f} | | report |")
        else:
            out.append(f"| retention's pass over the record when nothing is over (counts every call of {n:,}, pages of 256), ms (one core) | {rt:,.1f} | — | | report |")
seed = rows.get("seed", {})
out.append(f"| start-up with {seed.get('accounts', 0):,} accounts and {seed.get('members', 0):,} members | {g('startup', 'startup_ms'):.0f} ms to `/healthz`; RSS {g('startup', 'rss_kib') / 1024:.0f} MiB, {g('rss_after_load', 'rss_kib') / 1024:.0f} MiB after the page runs | — | | ≤ 2 s {mark(g('startup', 'startup_ms') <= 2000)} |")
rss_after = g("rss_after_load", "rss_kib") / 1024
out.append(f"| RSS after the scale run (start-up, then the page runs above) | {rss_after:,.0f} MiB (read cache: `[store] cache_entries_max` = 20,000 per table) | before the read cache and binary format: 95 MiB at start-up | {rss_after / 95:.2f} | ≤ 1.5× {mark(rss_after <= 1.5 * 95)} |")
ps, pb, pl = g("page_small", "p50_ms"), g("page_big_first", "p50_ms"), g("page_big_later", "p50_ms")
out.append(
    f"| members page (20 items), p50 / req/s | 20 members: {ps:.2f} ms / {g('page_small', 'rate'):,.0f}; "
    f"100,000 members, first page: {pb:.2f} ms / {g('page_big_first', 'rate'):,.0f}; later page: {pl:.2f} ms / {g('page_big_later', 'rate'):,.0f} | — | "
    f"{ratio(pb, ps):.2f} | same cost {mark(ratio(pb, ps) <= 1.5 and ratio(pl, ps) <= 1.5)} |"
)
def measured_alone(part, tail):
    """The note under the table for figures a BENCH_ONLY=<part> run measured."""
    m = rows.get(f"machine_{part}")
    if m:
        out.append("")
        out.append(
            f"{tail[0]} were measured on their own "
            f"(`BENCH_ONLY={part} BENCH_SECONDS={seconds} taskset -c 0,1 benches/run.sh`) on {m['date']}: {m['cores']} × {m['model']}, "
            f"{m['memory_gib']} GiB, 1-minute load {m['load1_before']:.2f} before the run{inodes(m)}, {tail[1]}"
        )


measured_alone("console", ("The two Team members page rows and the API reads they are divided by",
                           "the 20-member figures pinned as the reads above, the 100,000-member ones unpinned as in the scale run."))
measured_alone("transfers", ("The transfer rounds", "nothing pinned, as the transfer rows above."))
if "pgbench_transfer_64" in rows:
    out.append("")
    out.append("## On PostgreSQL")
    out.append("")
    out.append(
        "A throwaway PostgreSQL cluster on the same machine (`fsync` on), started by the run. "
        "`pgbench` runs the SQL work of one transfer (update the account, insert an audit row, "
        "two outbox rows and a hook event, commit), each client on its own row. admind's "
        "transfers are the same scenario as above (each client on its own account), with one "
        "replica, then two replicas on the same database (odd clients on the second)."
        + (f" Measured on {datetime.date.today()} with `BENCH_ONLY=postgres`; the figures above "
           "come from the last full run." if os.environ.get("BENCH_ONLY") == "postgres" else "")
        + machine("postgres")
    )
    out.append("")
    out.append("| clients | admind, 1 replica: transfers/s (p99) | admind, 2 replicas: transfers/s (p99) | pgbench, same SQL work: tx/s | ratio, 2 replicas / pgbench | goal | admind on sled, same run: transfers/s (p99) |")
    out.append("|---|---|---|---|---|---|---|")
    for c in (1, 16, 64):
        one_r, two_r, pgb = g(f"pg_transfers_{c}_1r", "rate"), g(f"pg_transfers_{c}_2r", "rate"), g(f"pgbench_transfer_{c}", "rate")
        p99 = g(f"pg_transfers_{c}_2r", "p99_ms")
        goal = f"≥ 0.6 {mark(ratio(two_r, pgb) >= 0.6)}, p99 ≤ 50 ms {mark(p99 <= 50)}" if c == 64 else ""
        out.append(
            f"| {c} | {rate(f'pg_transfers_{c}_1r', 'postgres')} ({g(f'pg_transfers_{c}_1r', 'p99_ms'):.1f} ms) | {rate(f'pg_transfers_{c}_2r', 'postgres')} ({p99:.1f} ms) | "
            f"{rate(f'pgbench_transfer_{c}', 'postgres')} | {ratio(two_r, pgb):.2f} | {goal} | "
            + (f"{g(f'sled_transfers_{c}', 'rate'):,.0f} ({g(f'sled_transfers_{c}', 'p99_ms'):.1f} ms) |" if f"sled_transfers_{c}" in rows else "— |")
        )
    out.append("")
    out.append(
        "PostgreSQL's CPU per operation: every process of the cluster sampled from `/proc` before "
        "and after each run (live backends, plus the backends the postmaster reaped), divided by "
        "the run's transfers (admind: including its workers' bookkeeping until the run ends) or "
        "pgbench's transactions. Drain: how long after the load stops the workers take to write "
        "the two mails of every transfer it made."
    )
    out.append("")
    out.append("| clients | PostgreSQL CPU per transfer, 2 replicas | per pgbench transaction | ratio | goal | drain after the load, 2 replicas |")
    out.append("|---|---|---|---|---|---|")
    for c in (1, 16, 64):
        mine, theirs = g(f"pg_transfers_{c}_2r", "pg_cpu_us_per_op"), g(f"pgbench_transfer_{c}", "pg_cpu_us_per_op")
        drain = rows.get(f"pg_transfers_{c}_2r", {}).get("drain_ms")
        goal = f"≤ 0.5 {mark(ratio(mine, theirs) <= 0.5)}" if c == 64 else ""
        drain_text = f"{drain / 1000:.1f} s" if drain is not None else "not drained in 120 s"
        out.append(f"| {c} | {mine:,.0f} µs | {theirs:,.0f} µs | {ratio(mine, theirs):.2f} | {goal} | {drain_text} |")
    out.append("")
    out.append(
        "What changed for issue 23 so far: statements prepared once per connection (each was "
        "prepared and closed at every execution); group commit (the commands of a writer "
        "batch on different accounts in one transaction, their locks taken together in key "
        "order, each in a savepoint, one COMMIT); a transaction's new queue items one "
        "multi-row INSERT, a pass's removals one DELETE per queue; a read cache on each replica "
        "that the others invalidate by announcement (reads: see below); queue workers that "
        "settle each item without waiting for the commit before the next attempt (the drain "
        "after a 5 s load at 64 clients was 46.9 s, then 6.0 s), lanes that settle what they ran "
        "in a row together, a window on the queue filtered by the database (claims held "
        "elsewhere are not read), bitmap scans off (the queue's stale statistics made the planner "
        "read and sort the whole queue), and hook-call records numbered and written a batch at a "
        "time. Where PostgreSQL's time goes now (pg_stat_statements over a 10 s run of 64 "
        "clients on 2 replicas, this machine): about 13 statements per transfer "
        "against pgbench's 7, and the workers' scans and claims are still about half of the "
        "execution time (a scan ~1 ms: it steps over the rows the other replica holds and the "
        "dead rows the churn leaves). Since the table above: new mails are handed from the commit "
        "to the replica's own outbox worker, which scans the outbox only once a second or after "
        "a full batch (window scans in a 10 s run at 64 clients on 2 replicas: 2,892 calls and "
        "2,359 ms of execution, then 2,542 and 1,571 ms). What is left to do: the same for hook "
        "events and deliveries with the owning replica recorded at insert (no claim), a "
        "due-time column, a group's writes as one statement per table, reads of a command's "
        "account, members and integrations in one round trip. "
        "Since then (session of 2026-12-05, 10:00): the pool's connections are tokio-postgres, "
        "and a transaction's writes are deferred and pipelined (a command's BEGIN and locks go "
        "with its first read, its writes with its RELEASE SAVEPOINT or COMMIT, one round trip "
        "each), which leaves a transfer's reads (account, two members, integrations) and the id "
        "sequence as its round trips. Measured against the run just before it (same command, "
        "same machine, same day): 64 clients on 2 replicas 1,517 -> 1,407 transfers/s, "
        "PostgreSQL CPU 854 -> 939 µs per transfer, 1 client on 1 replica 652 -> 595/s; pgbench "
        "itself moved 5,440 -> 6,872 tx/s between the two runs: no gain beyond this machine's "
        "noise. Round trips were not what bounds a transfer here; the CPU the two replicas, their "
        "workers and PostgreSQL share is. "
        "Before this round of changes (the same command on 2026-12-05, this machine): 64 clients "
        "on 2 replicas 1,511 transfers/s, PostgreSQL CPU 2,799 µs per transfer (11.65× pgbench's), "
        "drain 46.9 s; 1 client 503/s at 1,595 µs; reads 5,910 (owner) and 3,903 (members) req/s "
        "on 2026-12-04, without the cache. "
        "Since then (session of 2026-12-07, 04:22): a group of commands costs two round trips "
        "whatever its size (its locks, accounts, members, integrations and ids in one; its "
        "accounts, audit entries and queue items one statement per table with its COMMIT), "
        "replicas run 2 writer threads instead of half the pool, and a replica's new mails and "
        "hook events are inserted claimed by it and handed to its workers with their values. "
        "64 clients on 2 replicas, same run as pgbench: 0.19 -> 0.46 of pgbench (1,234 -> 2,808 "
        "transfers/s), PostgreSQL CPU 3.86x -> 1.45x pgbench's per transaction; the table above "
        "was a later run. Since then (session of 2026-12-07, 10:32): a hook event's lane is a "
        "column the laned worker asks about instead of reading the other replica's items, a "
        "replica's groups never wait for an account another transaction holds (its commands go "
        "to a thread that waits), and the hook record's retention reads ids, not pages. 64 "
        "clients on 2 replicas: 0.48 -> 0.54 and 0.59 of pgbench in two runs, p99 54.5 -> 33.4 "
        "ms, PostgreSQL CPU 1.33x -> 0.89x pgbench's. Since then (session of 2026-12-07, "
        "12:45): mail files are created in the mail folder's `.tmp` folder and named relative "
        "to open folders, and lettre is given each message's envelope: in alternating pairs the "
        "replicas' CPU per transfer went from about 256 to 228 µs and 2 replicas from 3,341-3,688 "
        "to 3,685-3,844 transfers/s; the hook-call record's pages are compressed with lz4 "
        "(schema 5); in `benches/run.sh`, 0.57, 0.58 and 0.67 of pgbench in three runs while "
        "pgbench moved from 6,876 to 5,687 tx/s (the table above is the third, p99 59.6 ms). "
        "Since then (session of 2026-12-07, 15:28): every value is JSON text instead of jsonb "
        "(schema 6; PostgreSQL parsed each value at every write and printed it at every read), "
        "and the announcer's commits do not wait for the WAL: PostgreSQL's CPU per transfer "
        "182 -> 133-138 µs in alternating runs (see \"JSON text instead of jsonb\" below); "
        "in `benches/run.sh`, 0.66, 0.80 and 0.90 of pgbench in three runs, CPU 0.79x, 0.60x "
        "and 0.58x pgbench's. A group's transaction then plans generically (its prefetch was "
        "planned at every call): a fourth run, 0.79 of pgbench and CPU 0.61x; at 1 client "
        "PostgreSQL's CPU per transfer went from 975-981 to 846 µs. "
        "The full run of the session of 2026-12-07, 18:18 gave 0.71 of pgbench, CPU 0.73x "
        "(the machine's 1-minute load was 4.8 when its PostgreSQL part began). "
        "In that session: a 60-s load at 64 clients on 2 replicas "
        "leaves no growing backlog (the rows waiting in the database stayed between 243 and 624 "
        "hook events and 362 and 704 mails from the first sample to the last; mail drained "
        "0.30-0.37 s after the load, 0.09 s after 10 s; see \"A 60-s load on PostgreSQL\" "
        "below). "
        "Since then (session of 2026-12-07, 20:10): a command's mails are one outbox item, "
        "so a transfer writes four rows and removes two (pgbench's script still writes two "
        "outbox rows, as issue 23 defines a transfer's SQL). In alternating runs PostgreSQL's "
        "CPU per transfer went from 154-168 to 149-150 µs on 2 replicas (0.63-0.72x -> "
        "0.58-0.60x pgbench's) and from 125-140 to 116-126 µs on one (0.46-0.49x); the table "
        "above is the full run of that build. "
        "What is left: two replicas at half of pgbench's CPU. They commit smaller groups than "
        "one replica (15 transfers a group against 20), and what remains is spread over every "
        "row and statement, with no single cost to remove (see \"A change's mails in one "
        "outbox item\", \"Groups that never wait\" and \"A 60-s load on PostgreSQL\" below)."
    )
    out.append("")
    out.append(
        "Duplicate outbound deliveries across SIGKILLs (`CRASH_CAMPAIGN_ROUNDS=20 TEST_STORE=postgres "
        "CRASH_CAMPAIGN_REPLICAS=2 cargo test --test crash_campaign -- --nocapture`, 2 replicas, "
        "2-core AMD EPYC, two runs each): items settled with their pass: 49 of 1,413 and 35 of "
        "1,236 events received twice (3.5 %, 2.8 %); each settled as soon as attempted: 32 of "
        "1,901 and 43 of 1,640 (1.7 %, 2.6 %); with this round's queue changes (mail settles "
        "without waiting, deliveries still chunk by chunk): 10 of 1,442 and 38 of 1,552 (0.7 %, "
        "2.4 %). While deliveries settled without waiting too, 62 of 1,374 and 92 of 1,625 (4.5 %, "
        "5.7 %): that is why the outbound queue keeps `SETTLE_EACH_CHUNK`. Each duplicate traced "
        "arrived milliseconds before its replica was killed, before its settling could commit: "
        "the receiver dedupes by `webhook-id`. Since 2026-12-07 the campaign tells those apart "
        "from duplicates without need: the receiver traces each request to the process that "
        "sent it (its socket in `/proc`), and a duplicate is needed only if that process was "
        "killed, or PostgreSQL stopped, after it sent the first copy and before the second "
        "arrived; the campaign fails on any other. Two runs that day (2 × Intel Xeon): 40 of "
        "1,125 and 77 of 1,341 receipts were duplicates (3.6 %, 5.7 %), 0 of them without need "
        "(goal 0 ✔). A build that sends every 40th delivery twice fails it (14 and 8 found "
        "without need, on sled and on PostgreSQL)."
    )
    out.append("")
    out.append("| read, 64 connections | on PostgreSQL, req/s (p99) | on sled (last full run), req/s | ratio |")
    out.append("|---|---|---|---|")
    for name, label in (("owner", "`GET .../owner`"), ("members_20", "`GET .../members` (20)")):
        pg_rate, sled_rate = g(f"pg_{name}", "rate"), g(name, "rate")
        out.append(f"| {label} | {pg_rate:,.0f} ({g(f'pg_{name}', 'p99_ms'):.1f} ms) | {sled_rate:,.0f} | {ratio(pg_rate, sled_rate):.2f} |")
out.append("")
out.append("Seeding (in-process through the real core and writer, no HTTP): "
           f"{seed.get('members', 0):,} members in {seed.get('seconds', 0):.0f} s.")
out.append("")
out.append("Errors during the runs: " + ", ".join(f"{k} {v.get('errors', 0)}" for k, v in rows.items() if "errors" in v) + ".")
if "hostile_signins" in rows:
    out.append("")
    out.append("## Hostile load")
    out.append("")
    out.append(
        "Without credentials, from one client address (the per-IP attempt limit off, so "
        "the bound on password hashing is what is measured), production argon2id cost "
        "(19 MiB, 2 passes). \"Previous build\" is the same scenario run against the "
        "build before the hardening (`BEFORE_BIN`), when given."
    )
    if os.environ.get("BENCH_ONLY") == "hostile":
        out.append("")
        out.append(
            f"This section was measured on {datetime.date.today()} with `BENCH_ONLY=hostile`; "
            "the figures above it come from the last full run (their lines in "
            "`benches/last-results.jsonl` were kept)."
        )
    out.append("")
    before = "before_hostile_signins" in rows
    out.append("| figure | admind | baseline (same run) | previous build | goal |")
    out.append("|---|---|---|---|---|")
    def prev(name, key, fmt):
        return fmt(g("before_" + name, key)) if before else "—"
    hs = rows["hostile_signins"]
    peak = hs["peak_rss_kib"] / 1024
    out.append(
        f"| peak RSS, 3 × 150 concurrent sign-ins for unknown addresses | {peak:,.0f} MiB "
        f"({hs['answered_401']} answered 401, {hs['shed_503']} shed 503 `overloaded`) | idle daemon: "
        f"{g('hostile_idle_baseline', 'peak_rss_kib') / 1024:,.0f} MiB | "
        f"{prev('hostile_signins', 'peak_rss_kib', lambda v: f'{v / 1024:,.0f} MiB')} | ≤ 300 MiB {mark(peak <= 300)} |"
    )
    hp = hs["healthz_p99_ms"]
    out.append(
        f"| `/healthz` p99 during those sign-ins | {hp:.1f} ms (p50 {hs['healthz_p50_ms']:.1f} ms, {hs['healthz_probes']} probes) | "
        f"idle daemon: {g('hostile_idle_baseline', 'healthz_p99_ms'):.1f} ms | "
        f"{prev('hostile_signins', 'healthz_p99_ms', lambda v: f'{v:,.1f} ms')} | ≤ 50 ms {mark(hp <= 50)} |"
    )
    ia, ib = rows.get("idle_after_change", {}), rows.get("idle_no_scripts", {})
    extra_reads = ia.get("read_calls_5s", 0) - ib.get("read_calls_5s", 0)
    def cpu(r):
        return 100.0 * r.get("cpu_ticks_5s", 0) / max(1, r.get("ticks_per_s", 100)) / 5
    out.append(
        f"| idle for 5 s after one change, 200 scripts of 250 KB: read calls / CPU | {ia.get('read_calls_5s', 0)} / {cpu(ia):.1f}% | "
        f"no scripts: {ib.get('read_calls_5s', 0)} / {cpu(ib):.1f}% | "
        f"{(str(rows['before_idle_after_change']['read_calls_5s']) + ' / ' + format(cpu(rows['before_idle_after_change']), '.1f') + '%') if 'before_idle_after_change' in rows else '—'} | "
        f"no reads {mark(extra_reads <= 0)} |"
    )
    mm = rows.get("made_up_methods", {})
    grew = mm.get("metrics_bytes_after", 0) - mm.get("metrics_bytes_before", 0)
    out.append(
        f"| `/metrics` size after {mm.get('methods', 0):,} more made-up methods | {mm.get('metrics_bytes_after', 0):,} B | "
        f"after the first 100: {mm.get('metrics_bytes_before', 0):,} B | "
        f"{prev('made_up_methods', 'metrics_bytes_after', lambda v: f'{v:,.0f} B')} | "
        f"unchanged {mark(grew <= 1024)} ({grew:+,} B: counters' digits) |"
    )

if "layers_owner_none_1" in rows:
    m = rows.get("machine_layers", {})
    out.append("")
    out.append("## What each middleware layer costs (issue 26)")
    out.append("")
    out.append(
        "`BENCH_ONLY=layers benches/run.sh`: the two read figures with one layer left out at a time "
        "(`BENCH_WITHOUT_LAYERS=<layer>`, read once when the router is built), with all of them left out, "
        "and the bare server of the same body size; two rounds, alternating; each cell gives both rounds. "
        f"Machine: {m.get('cores')} × {m.get('model')}, daemon on CPU {m.get('daemon_cpus')}, wrk on CPU {m.get('load_cpus')}, "
        f"1-minute load {m.get('load1_before', 0):.2f} before the run; {m.get('date')}."
    )
    out.append("")
    out.append("| left out | `GET owner`, req/s | ÷ bare | `GET members` (20), req/s | ÷ bare |")
    out.append("|---|---|---|---|---|")
    def both(fig, variant):
        return [g(f"layers_{fig}_{variant}_{r}", "rate") for r in (1, 2)]
    def bare_of(fig, r):
        return g(f"layers_bare_{fig}_{r}", "rate")
    variants = sorted({k[len("layers_owner_"):].rsplit("_", 1)[0] for k in rows if k.startswith("layers_owner_")},
                      key=lambda v: (v != "none", v == "all", v))
    for v in variants:
        cells = []
        for fig in ("owner", "members"):
            rs = both(fig, v)
            cells.append(" / ".join(f"{x:,.0f}" for x in rs))
            cells.append(" / ".join(f"{ratio(x, bare_of(fig, r + 1)):.2f}" for r, x in enumerate(rs)))
        label = {"none": "nothing (the whole stack)", "all": "every layer above"}.get(v, f"`{v}`")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("| (bare server) | " + " / ".join(f"{bare_of('owner', r):,.0f}" for r in (1, 2)) + " | | "
               + " / ".join(f"{bare_of('members', r):,.0f}" for r in (1, 2)) + " | |")

analysis = os.path.join(os.path.dirname(__file__), "analysis.md")
if os.path.exists(analysis):
    out.append("")
    out.append(open(analysis).read().rstrip())
print("\n".join(out))
