# Ten `nginx -s reload`s while wrk drives guarded, pairing, paired-only and
# bearer routes: nothing but the intended answers, no [alert], the lock and
# the failure count of a key survive, and Redis ends with as many
# connections as it had (the old workers' are closed, none leaks).
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
is(http_get($P, '/app', headers => { Authorization => "Bearer $token" })->{status}, 200, 'the session works');

# the connections of an idle edge: every worker has its command and events
# connections once it has served something
sleep 1;
my $before = redis_clients($redis);

my $w = wrk_start($P, 30, token => $token);
sleep 2;
my $t0 = time;
for my $i (1 .. 10) {
    $ng->reload;
    sleep 1.5;
}
my $reload_s = time - $t0;
my $r = wrk_finish($w);
diag("wrk over 10 reloads ($reload_s s): $r->{requests} requests, $r->{summary}");
ok($r->{requests} > 1000, 'wrk sent requests all along');
is($r->{unexpected}, 0, 'no answer other than 200, 201, 403 or 429') or diag($r->{text});
is($r->{socket_errors}, 0, 'no connection refused, reset or timed out');
ok(($r->{codes}{429} // 0) >= $r->{requests} / 10 * 0.9, 'the locked account stayed locked throughout');

is(lock_status($P, 'victim'), 429, 'after the reloads the lock holds');
my @s = fail_account($P, 'half', 2);
is(http_get($P, '/login', headers => { 'X-Account' => 'half', 'X-Pass' => 'good' })->{status}, 429,
   'and the 3 failures counted before them: 2 more lock the account');
is(http_get($P, '/app', headers => { Authorization => "Bearer $token" })->{status}, 200, 'the session still works');
is(http_get($P, '/paired', headers => { 'X-User-Id' => 'approved-user' })->{status}, 200,
   'the approved user still passes');

sleep 1;
my $after = wait_clients($redis, $before, 15);
is($after, $before, "Redis connections: $before before, $after after the reloads (none leaked)");

sub lock_status ($port, $account) {
    http_get($port, '/login', headers => { 'X-Account' => $account, 'X-Pass' => 'good' })->{status};
}

done();
