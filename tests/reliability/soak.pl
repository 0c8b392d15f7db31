# Soak: MINUTES of mixed traffic against one edge (allowed logins, guessing
# from ever new accounts, a locked account, pairing requests, paired-only
# and bearer requests, password logins) with a Redis blip (SIGSTOP 2 s)
# every 2 minutes; every 10 s a row: worker RSS, open fds, Redis
# used_memory and keys. Short windows and TTLs, so that keys turn over
# within the run. Run by scripts/soak.sh.
use 5.036;
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../../t/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;
use PgAuth ();
use RelTest;

my $minutes = $ENV{PG_SOAK_MINUTES} // 10;
my $table_file = $ENV{PG_SOAK_TABLE};

$RelTest::CONF =~ s/window=15m lockout=1h/window=1m lockout=2m/;
$RelTest::CONF =~ s/code_ttl=1h max_pending=3 request_interval=10m/code_ttl=2m max_pending=3 request_interval=1m/;
$RelTest::CONF =~ s/session_ttl=1h/session_ttl=2m/;

my $redis = start_redis();
my $ng = start_edge($redis);
my $P = $ng->port;
my $token = setup_state($redis, $ng);
my $token_born = time;

# Both workers: RSS, and of it the private pages (heap, stacks: RssAnon)
# and the shared ones touched (the shared zones: RssShmem), and open fds.
sub worker_stats {
    my ($rss, $anon, $shm, $fds) = (0, 0, 0, 0);
    for my $pid ($ng->worker_pids) {
        my $st = eval { PgTest::read_file("/proc/$pid/status") } // '';
        $rss += $1 if $st =~ /^VmRSS:\s+(\d+)/m;
        $anon += $1 if $st =~ /^RssAnon:\s+(\d+)/m;
        $shm += $1 if $st =~ /^RssShmem:\s+(\d+)/m;
        opendir(my $d, "/proc/$pid/fd") or next;
        $fds += grep { /^\d+$/ } readdir $d;
    }
    return ($rss, $fds, $anon, $shm);
}

my (@rows, @samples);
my $head = sprintf "| %5s | %8s | %6s | %9s | %9s | %9s | %8s | %10s | %6s | %s |",
    'min', 'requests', 'req/s', 'RSS (kB)', 'anon (kB)', 'shm (kB)', 'open fds', 'used_memory', 'keys',
    'statuses in the interval';
my $rule = '|' . join('|', map { '-' x ($_ + 2) } 5, 8, 6, 9, 9, 9, 8, 10, 6, 24) . '|';
say $head; say $rule;
push @rows, $head, $rule;

my ($t0, $next_sample, $next_blip) = (time, time, time + 120);
my ($n, $total, $blips, %codes) = (0, 0, 0);
my $end = $t0 + $minutes * 60;
my $rand = int(rand(1e9));
while (time < $end) {
    $n++;
    my $k = $n % 100;
    my $r;
    if ($k < 40) {
        $r = http_get($P, '/login', headers => { 'X-Account' => 'u' . ($n % 200), 'X-Pass' => 'good' });
    } elsif ($k < 70) {
        $r = http_get($P, '/login', headers => { 'X-Account' => "g$rand-$n", 'X-Pass' => 'bad' });
    } elsif ($k < 80) {
        $r = http_get($P, '/login', headers => { 'X-Account' => 'victim', 'X-Pass' => 'good' });
    } elsif ($k < 90) {
        $r = http_post_json($P, '/pairing/request', { platform => 'telegram', user_id => "s$rand-$n" });
    } elsif ($k < 95) {
        $r = http_get($P, '/paired', headers => { 'X-User-Id' => 'approved-user' });
    } elsif ($k < 99) {
        $r = http_get($P, '/app', headers => { Authorization => "Bearer $token" });
    } else {
        $r = http_post_json($P, '/auth/login', { user => 'alice', password => 'pencil-pencil' });
        $token = $r->{json}{token} if $r->{status} == 200;
    }
    $codes{ $r->{status} }++;
    $total++;

    my $now = time;
    if ($now >= $next_blip) {
        # 2 s of Redis not answering, with traffic on the guarded route:
        # the worker times out once (timeout=500ms), then store_down local
        $redis->sigstop;
        my $until = time + 2;
        while (time < $until) {
            $codes{ http_get($P, '/login', headers => { 'X-Account' => 'u' . ($n++ % 200), 'X-Pass' => 'good' })
                    ->{status} }++;
            $total++;
        }
        $redis->sigcont;
        $blips++;
        $next_blip += 120;
    }
    if ($now >= $next_sample) {
        my ($rss, $fds, $anon, $shm) = worker_stats();
        my $mem = ($redis->cmd('INFO', 'memory') =~ /^used_memory:(\d+)/m)[0];
        my $keys = $redis->dbsize;
        my $elapsed = $now - $t0;
        push @samples, { t => $elapsed, rss => $rss, anon => $anon, shm => $shm, fds => $fds, mem => $mem, keys => $keys,
                         total => $total };
        my $row = sprintf "| %5.1f | %8d | %6.0f | %9d | %9d | %9d | %8d | %10d | %6d | %s |",
            $elapsed / 60, $total, $total / ($elapsed || 1), $rss, $anon, $shm, $fds, $mem, $keys,
            join(' ', map { "$_:$codes{$_}" } sort keys %codes);
        say $row;
        push @rows, $row;
        %codes = ();
        $next_sample += 10;
    }
}

PgTest::write_file($table_file, join("\n", @rows) . "\n") if $table_file;
diag("soak: $total requests in $minutes min, $blips Redis blips");
ok($total > 0, 'traffic flowed');

# Flat, within stated bounds, once warm (after the first 3 minutes: the
# zones' pages and the key population settle): private memory of both
# workers grows by at most 256 kB over the rest of the run (about 2 bytes per
# request at 400 requests a second for 7 minutes), open fds stay within 4 of
# their warm value, and Redis keys and Redis memory (above its level at the
# start) per request of the last minute at most 1.5 x their warm level (the
# window: keys expire a window after their last use, so their number and
# memory follow the request rate, which moves with what else runs on the
# machine).
my @warm = grep { $_->{t} >= 180 } @samples;
SKIP: {
    skip 'the run is too short for the bounds (needs more than 4 minutes)', 4 if @warm < 7;
    my ($w, $last) = ($warm[0], $warm[-1]);
    my $max = sub ($k) { my $m = 0; $m = $_->{$k} > $m ? $_->{$k} : $m for @warm; $m };
    cmp_ok($last->{anon} - $w->{anon}, '<=', 256,
        "worker private memory flat: $w->{anon} kB at 3 min, $last->{anon} kB at the end");
    cmp_ok($max->('fds') - $w->{fds}, '<=', 4, "open fds flat ($w->{fds} at 3 min, at most " . $max->('fds') . ')');
    # requests in the minute before each sample
    my %at = map { int($_->{t} / 10 + 0.5) => $_->{total} } @samples;
    my $base_mem = $samples[0]{mem};
    my $per = sub ($s, $what) {
        my $before = $at{ int($s->{t} / 10 + 0.5) - 6 } // 0;
        my $recent = $s->{total} - $before;
        my $v = $what eq 'mem' ? $s->{mem} - $base_mem : $s->{keys};
        return $recent > 0 ? $v / $recent : 0;
    };
    for my $what ('keys', 'mem') {
        my ($w_per, $max_per) = ($per->($w, $what), 0);
        for (@warm) { my $p = $per->($_, $what); $max_per = $p if $p > $max_per }
        cmp_ok($max_per, '<=', 1.5 * $w_per,
            sprintf('Redis %s per request of the last minute bounded (%.3f at 3 min, at most %.3f)',
                    $what eq 'mem' ? 'used_memory' : 'keys', $w_per, $max_per));
    }
}
done();
