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

sub worker_stats {
    my ($rss, $fds) = (0, 0);
    for my $pid ($ng->worker_pids) {
        my $st = eval { PgTest::read_file("/proc/$pid/status") } // '';
        $rss += $1 if $st =~ /^VmRSS:\s+(\d+)/m;
        opendir(my $d, "/proc/$pid/fd") or next;
        $fds += grep { /^\d+$/ } readdir $d;
    }
    return ($rss, $fds);
}

my @rows;
my $head = sprintf "| %5s | %8s | %6s | %9s | %8s | %10s | %6s | %s |",
    'min', 'requests', 'req/s', 'RSS (kB)', 'open fds', 'used_memory', 'keys', 'statuses in the interval';
my $rule = '|' . join('|', map { '-' x ($_ + 2) } 5, 8, 6, 9, 8, 10, 6, 24) . '|';
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
        my ($rss, $fds) = worker_stats();
        my $mem = ($redis->cmd('INFO', 'memory') =~ /^used_memory:(\d+)/m)[0];
        my $keys = $redis->dbsize;
        my $elapsed = $now - $t0;
        my $row = sprintf "| %5.1f | %8d | %6.0f | %9d | %8d | %10d | %6d | %s |",
            $elapsed / 60, $total, $total / ($elapsed || 1), $rss, $fds, $mem, $keys,
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
done();
