# A worker killed with SIGKILL under load, five times: the master starts a
# new one, it reconnects to Redis, no lock is lost, and the shared zone is
# not left locked (the survivors and the new workers keep answering).
use 5.036;
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../../t/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;
use RelTest;

my $redis = start_redis();
my $ng = start_edge($redis);
my $P = $ng->port;
my $token = setup_state($redis, $ng);
sleep 1;
my $before = redis_clients($redis);

my $w = wrk_start($P, 25, token => $token);
sleep 2;
my @killed;
for my $i (1 .. 5) {
    my @workers = $ng->worker_pids;
    my $victim = $workers[$i % @workers];
    kill 'KILL', $victim;
    push @killed, $victim;
    PgTest::wait_until(sub { my @now = $ng->worker_pids; @now == 2 && !grep { $_ == $victim } @now },
                       timeout => 5);
    sleep 3;
}
my $r = wrk_finish($w);
diag("wrk over 5 worker kills: $r->{requests} requests, $r->{summary}");
is(scalar($ng->worker_pids), 2, 'the master respawned every killed worker');
is($r->{unexpected}, 0, 'no answer other than 200, 201, 403 or 429') or diag($r->{text});
# connections the killed worker held die with it: wrk sees them reset
ok($r->{socket_errors} <= 5 * 8, "socket errors only from the killed workers' own connections ($r->{socket_errors})");

# every worker answers (several connections, so that each gets some)
my %codes;
$codes{ http_get($P, '/login', headers => { 'X-Account' => 'victim', 'X-Pass' => 'good' })->{status} }++ for 1 .. 20;
is_deeply(\%codes, { 429 => 20 }, 'the lock holds on every worker, and the zone answers');
fail_account($P, 'half', 2);
is(http_get($P, '/login', headers => { 'X-Account' => 'half', 'X-Pass' => 'good' })->{status}, 429,
   'the failure count survived the kills');
is(http_get($P, '/app', headers => { Authorization => "Bearer $token" })->{status}, 200, 'the session still works');

my $after = wait_clients($redis, $before, 15);
is($after, $before, "Redis connections: $before before, $after after (the new workers reconnected, none leaked)");

my $n = strip_expected_alerts($ng, @killed);
is($n, 5, 'the only alerts: nginx reporting the five workers we killed');
done();
