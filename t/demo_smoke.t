# The demo (scripts/run.sh with conf/demo.conf), as a newcomer meets it: it
# comes up on free ports; five wrong pairing codes reach the upstream and the
# sixth is refused at the edge; another address pairs with the right code;
# Redis holds only HMACs; the pairing flow goes from a request over HTTP to
# pairguardctl approve and revoke; a login whose account a stranger locks
# still lets in the browser with its device cookie. When its Redis is stopped the demo keeps
# running, says so, and the edge keeps guarding with per-node counters
# (pairguard_store_down local). Ctrl-C (SIGTERM here) stops exactly what it
# started. `scripts/run.sh --check` runs this file.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;

my $CTL = ctl_path();
plan skip_all => "$CTL not built (scripts/build.sh)" unless -x $CTL;
plan skip_all => 'redis-cli not found (redis-tools)' unless grep { -x "$_/redis-cli" } split /:/, $ENV{PATH};

my %port = (edge => free_port(), redis => free_port(), upstream => free_port());
my $run_dir = testdir() . '/run';
my $demo = start_process(['bash', root_dir() . '/scripts/run.sh'], env => {
    PG_RUN_DIR       => $run_dir,
    PG_PORT          => $port{edge},
    PG_REDIS_PORT    => $port{redis},
    PG_UPSTREAM_PORT => $port{upstream},
    PG_SKIP_BUILD    => 1,
    PG_RUN_CHECK     => undef,
    PG_MODULE        => module_path(),
    PG_CTL           => $CTL,
    PG_NGINX         => nginx_binary(),
});

my $up = wait_until(sub { $demo->output =~ /pairguard demo is up/ || !$demo->alive }, timeout => 60)
    && $demo->output =~ /pairguard demo is up/;
ok($up, 'scripts/run.sh brings the demo up and says how to try it') or diag $demo->output;
BAIL_OUT('the demo did not start') unless $up;
my %pid;
($pid{nginx})    = $demo->output =~ /nginx pid (\d+)/;
($pid{upstream}) = $demo->output =~ /upstream\.py pid (\d+)/;
($pid{redis})    = $demo->output =~ /redis-server pid (\d+)/;
ok($pid{nginx} && $pid{upstream} && $pid{redis}, 'it names the pids of nginx, the upstream and Redis');
like($demo->output, qr/export PAIRGUARD_REDIS=127\.0\.0\.1:$port{redis}/, 'and how to point pairguardctl at it');

my $edge = $port{edge};
my $redis = redis_at($port{redis});
my $nginx_dir = "$run_dir/nginx";

# pairguardctl as the owner runs it, with the environment run.sh prints.
sub ctl (@args) {
    return run_cmd([$CTL, @args], env => {
        PAIRGUARD_REDIS => "127.0.0.1:$port{redis}", PAIRGUARD_SECRET_FILE => "$run_dir/pairguard.secret",
        PAIRGUARD_PREFIX => undef, PAIRGUARD_PAIRING_POLICY => undef,
    });
}

sub pair ($code, %o) { http_post_json($edge, '/api/provision/pair', { pairing_code => $code }, %o) }
sub upstream_pairs () { PgTest::http($port{upstream}, 'GET', '/__stats')->{json}{by_path}{'/api/provision/pair'} // 0 }

# A 6-digit code different from the real one.
sub wrong_code ($i, $real) { sprintf '%06d', ($real + 1000 * $i + 1) % 1000000 }

# Every key of the demo's Redis with its string, hash and set contents.
sub redis_everything () {
    my $text = '';
    for my $k ($redis->scan_keys) {
        my $t = $redis->cmd('TYPE', $k);
        my $v = $t eq 'string' ? [$redis->cmd('GET', $k)]
              : $t eq 'hash'   ? $redis->cmd('HGETALL', $k)
              : $t eq 'set'    ? $redis->cmd('SMEMBERS', $k)
              : [];
        $text .= join("\n", $k, map { $_ // '' } @$v) . "\n";
    }
    return $text;
}

# ---- the guard on seed 002's pairing endpoint ----

my $code;
{
    my $r = http_post_json($edge, '/api/provision/register', {});
    $code = $r->{json}{pairing_code};
    ok($r->{status} == 201 && $code, 'register answers 201 with a pairing code');
    $code //= '123456';

    my $before = upstream_pairs();
    for my $i (1 .. 5) {
        is(pair(wrong_code($i, $code))->{status}, 404, "wrong guess $i is forwarded and answered 404");
    }
    $r = pair(wrong_code(6, $code));
    is($r->{status}, 429, 'guess 6 is refused with 429');
    my $ra = $r->{headers}{'retry-after'} // '';
    ok($ra =~ /^\d+$/ && $ra >= 1, "the refusal carries Retry-After ($ra)");
    is($r->{json}{error}, 'too_many_attempts', 'the refusal body is too_many_attempts JSON');
    is(pair($code)->{status}, 429, 'the right code is refused too while 127.0.0.1 is locked');
    is(upstream_pairs() - $before, 5, 'the upstream saw only the 5 wrong guesses');
    is(pair($code, from => '127.0.0.2')->{status}, 200, 'from another address (127.0.0.2) the right code pairs (200)');

    my @keys = $redis->scan_keys('pairguard:*');
    ok(@keys > 0, 'Redis holds pairguard keys');
    ok(!grep({ /$code|127\.0\.0\.[12]/ } @keys), 'no Redis key names the code or the address');

    my $log = read_file("$nginx_dir/error.log");
    like($log, qr/pairguard: lockout start, policy "claim_ip"/, 'error.log has the lockout start notice');
    unlike($log, qr/\[(alert|emerg)\]/, 'error.log has no [alert] or [emerg]');
    like(read_file("$nginx_dir/access.log"), qr/decision=deny policy=claim_ip/,
         'access.log shows decision=deny policy=claim_ip');
}

# ---- the pairing flow: request over HTTP, pairguardctl approve, revoke ----

{
    my %user = ('X-Platform' => 'telegram', 'X-User-Id' => '4242');
    my $ask = { platform => 'telegram', user_id => '4242', user_name => 'Alice' };
    my $r = http_post_json($edge, '/pairing/request', $ask);
    my $pcode = $r->{json}{code} // '';
    ok($r->{status} == 201 && length $pcode == 8, 'POST /pairing/request answers 201 with an 8-symbol code');
    $pcode ||= 'NOCODE';
    $r = http_post_json($edge, '/pairing/request', $ask);
    ok($r->{status} == 429 && ($r->{json}{error} // '') eq 'rate_limited',
       'asking again at once is refused (429 rate_limited)');

    $r = http_get($edge, '/bot/echo', headers => \%user);
    ok($r->{status} == 403 && ($r->{json}{error} // '') eq 'not_paired',
       'before approval the paired-only route answers 403 not_paired');

    is(http_get($edge, '/pairing/admin/pending', from => '127.0.0.2')->{status}, 403,
       'the admin endpoints refuse a non-loopback client (127.0.0.2: 403)');
    my (undef, $pending, $err) = ctl('pending', 'telegram');
    ok($pending =~ /4242/ && index("$pending$err", $pcode) < 0, 'pairguardctl pending lists the request (and not the code)');

    my ($rc) = ctl('approve', 'telegram', lc $pcode);
    is($rc, 0, 'pairguardctl approve telegram CODE (lower case) exits 0');

    $r = http_get($edge, '/bot/echo', headers => \%user);
    is($r->{status}, 200, 'the paired user passes the paired-only route (200)');
    is($r->{json}{headers}{'x-pairguard-user'}, '4242', 'the upstream sees X-Pairguard-User: 4242');
    is(http_get($edge, '/bot/echo', headers => { %user, 'X-User-Id' => '4243' })->{status}, 403,
       'another user is still refused (403)');

    ($rc) = ctl('revoke', 'telegram', '4242');
    is($rc, 0, 'pairguardctl revoke telegram 4242 exits 0');
    is(http_get($edge, '/bot/echo', headers => \%user)->{status}, 403, 'right after the revocation the route answers 403');

    ok(index(redis_everything(), $pcode) < 0, 'no Redis key or value holds the pairing code');
}

# ---- trusted devices on the login (steps 12 and 13 of the instructions) ----

{
    like($demo->output, qr/pg_device/, 'the instructions show the trusted-device login');
    my $alice = { username => 'alice', password => 'alice-password' };
    my $r = http_post_json($edge, '/api/login', $alice);
    my ($device) = map { /^pg_device=([^;]+)/ ? $1 : () } @{ $r->{header_list}{'set-cookie'} // [] };
    ok($r->{status} == 200 && $device, 'a login with the right password answers 200 and sets the device cookie pg_device');
    my @st = map {
        http_post_json($edge, '/api/login', { username => 'alice', password => 'guess' },
                       headers => { 'X-Forwarded-For' => "2001:db8:bad::$_" })->{status}
    } 1 .. 6;
    is_deeply(\@st, [401, 401, 401, 401, 401, 429], 'five wrong passwords from other networks lock the account (the sixth: 429)');
    is(http_post_json($edge, '/api/login', $alice)->{status}, 429, 'without the cookie the right password gets 429');
    is(http_post_json($edge, '/api/login', $alice, headers => { Cookie => "pg_device=" . ($device // 'none') })->{status},
       200, 'with the device cookie it gets 200');
    my ($rc, $locks) = ctl('locks', 'login_account', 'alice');
    my ($label) = $locks =~ /^guard\s+([0-9a-f]{8}) \(alice\)\s+\d/m;
    ok($rc == 0 && $label, 'pairguardctl locks login_account alice shows the account locked') or diag $locks;
    $label //= 'none';
    ok(wait_until(sub { read_file("$nginx_dir/error.log") =~ /pairguard: event \{"type":"lock".*"scope":"guard","key":"$label"/ }, timeout => 5),
       'the lock is an event in the error log (pairguard_events_log on)');
    ok(index(redis_everything(), $device // 'none') < 0, 'no Redis key or value holds the device token');
}

# ---- Redis stopped: the demo keeps running, and the edge keeps guarding ----

{
    like($demo->output, qr/redis-cli -p $port{redis} shutdown nosave/, 'the instructions say how to stop Redis');
    run_cmd(['redis-cli', '-p', $port{redis}, 'shutdown', 'nosave']);
    ok(wait_until(sub { !kill(0, $pid{redis}) }, timeout => 10), 'redis-cli shutdown stops the demo\'s Redis');
    ok(wait_until(sub { $demo->output =~ /redis \(pid $pid{redis}\) stopped.*the demo keeps running/ }, timeout => 5),
       'run.sh says that Redis stopped and that the demo keeps running') or diag $demo->output;
    ok($demo->alive && kill(0, $pid{nginx}) && kill(0, $pid{upstream}), 'and it does: run.sh, nginx and the upstream are up');

    my @st = map { pair(wrong_code(10 + $_, $code), from => '127.0.0.3')->{status} } 1 .. 6;
    is_deeply(\@st, [404, 404, 404, 404, 404, 429],
              'without Redis five wrong guesses from 127.0.0.3 reach the upstream and the sixth is refused (store_down local)');
    like(read_file("$nginx_dir/error.log"), qr/pairguard: redis 127\.0\.0\.1:$port{redis} unavailable .*store_down local/,
         'error.log says the store is down and what the edge does meanwhile');
    is(http_post_json($edge, '/pairing/request', { platform => 'telegram', user_id => '77' })->{status}, 503,
       'the pairing endpoints, which need Redis, answer 503');
    my ($rc) = ctl('pending');
    is($rc, 3, 'pairguardctl exits 3 (store unreachable)');
}

# ---- Ctrl-C stops exactly what run.sh started ----

{
    kill 'TERM', $demo->pid;
    ok(wait_until(sub { !$demo->alive }, timeout => 20), 'SIGTERM stops run.sh');
    ok(!kill(0, $pid{nginx}) && !kill(0, $pid{upstream}), 'and with it nginx and the upstream');
    unlike(read_file("$nginx_dir/error.log"), qr/\[(alert|emerg|crit)\]/, 'no [alert], [emerg] or [crit] in the demo\'s error.log');
    $demo->stop;
}

done();
