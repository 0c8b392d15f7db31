package RelTest;

# What the reliability tests (tests/reliability/*.t, run by
# scripts/reliability.sh, not by the default suite) share on top of t/lib's
# PgTest: one nginx with guarded, pairing and auth routes in front of a
# fast nginx-served upstream, wrk driving a fixed mix through a Lua script
# that counts every status, and Redis' connection count.

use 5.036;
use Exporter 'import';
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;
use PgAuth ();

our @EXPORT = qw(start_edge wrk_start wrk_finish redis_clients wait_clients lock_account fail_account
                 strip_expected_alerts aof_redis restart_aof setup_state statuses_by_path);

our $CONF = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down local;
    pairguard_zone 1m;
    pairguard_policy account key=$http_x_account max_failures=5 window=15m lockout=1h;
    pairguard_pairing_policy code_ttl=1h max_pending=3 request_interval=10m platforms=telegram;
    pairguard_auth_policy session_ttl=1h argon2_m=8 argon2_t=1;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /login {
            pairguard account;
            pairguard_failure_status 401;
            proxy_pass http://127.0.0.1:%%UP_PORT%%;
        }
        location = /pairing/request { pairguard_pairing request; }
        location = /pairing/approve { pairguard_pairing approve; }
        # proxied, not `return`: a return would answer in the rewrite phase,
        # before the module's PREACCESS checks
        location = /paired {
            pairguard_require_paired platform=telegram user=$http_x_user_id;
            proxy_pass http://127.0.0.1:%%UP_PORT%%;
        }
        location = /auth/login { pairguard_auth password; }
        location = /app {
            pairguard_auth_require;
            proxy_pass http://127.0.0.1:%%UP_PORT%%;
        }
    }
}
CONF

# The upstream: a plain nginx of its own (fast, and not touched when the
# edge's workers are killed or reloaded); /login is 401 unless X-Pass: good.
our $UPSTREAM_CONF = <<'CONF';
http {
    %%HTTP_COMMON%%
    access_log off;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /login {
            if ($http_x_pass = good) { return 200 "ok\n"; }
            return 401 "no\n";
        }
        location / { return 200 "ok\n"; }
    }
}
CONF

sub start_edge ($redis, %o) {
    my $up = start_nginx($UPSTREAM_CONF, module => 0, workers => 1, log_level => 'notice');
    return start_nginx($CONF, redis => $redis, log_level => 'notice', vars => { up_port => $up->port }, %o);
}

# wrk's Lua: 1 in 10 requests for a locked account (429 expected), 1 in 20 a
# pairing request of a new user (201, or 429 once rate limits bite), 1 in 20
# a paired-only request (403 not paired / 200), 1 in 20 the bearer route
# with a real session (200); the rest good logins of 50 accounts (200).
sub _lua ($token) {
    return <<"LUA";
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} n = 0 id = math.random(1, 1000000000) end
function request()
    n = n + 1
    local h = { ["Connection"] = "close" }
    if n % 10 == 0 then
        h["X-Account"] = "victim"
        return wrk.format("GET", "/login", h)
    elseif n % 20 == 1 then
        h["Content-Type"] = "application/json"
        return wrk.format("POST", "/pairing/request", h,
            '{"platform":"telegram","user_id":"' .. id .. '-' .. n .. '"}')
    elseif n % 20 == 3 then
        h["X-User-Id"] = "approved-user"
        return wrk.format("GET", "/paired", h)
    elseif n % 20 == 7 then
        h["Authorization"] = "Bearer $token"
        return wrk.format("GET", "/app", h)
    end
    h["X-Account"] = "u" .. (n % 50)
    h["X-Pass"] = "good"
    return wrk.format("GET", "/login", h)
end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("codes")) do total[k] = (total[k] or 0) + v end
    end
    for k, v in pairs(total) do io.write(string.format("status %d %d\\n", k, v)) end
    local e = summary.errors
    io.write(string.format("errors %d %d %d %d\\n", e.connect, e.read, e.write, e.timeout))
    io.write(string.format("requests %d\\n", summary.requests))
end
LUA
}

# Starts wrk in the background for `seconds`; wrk_finish waits and parses.
sub wrk_start ($port, $seconds, %o) {
    my $dir = testdir();
    my $n = ++$RelTest::WRK;
    PgTest::write_file("$dir/wrk-$n.lua", _lua($o{token} // 'none'));
    my $out = "$dir/wrk-$n.out";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $out) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
        exec('wrk', '-t', $o{threads} // 1, '-c', $o{connections} // 8, '-d', "${seconds}s", '--timeout', '5s',
             '-s', "$dir/wrk-$n.lua", "http://127.0.0.1:$port/") or POSIX::_exit(127);
    }
    return { pid => $pid, out => $out };
}

sub wrk_finish ($w) {
    waitpid($w->{pid}, 0);
    my $text = PgTest::read_file($w->{out});
    my %r = (codes => {}, text => $text);
    $r{codes}{$1} = $2 while $text =~ /^status (\d+) (\d+)$/mg;
    @r{qw(connect read write timeout)} = $text =~ /^errors (\d+) (\d+) (\d+) (\d+)$/m;
    ($r{requests}) = $text =~ /^requests (\d+)$/m;
    $r{socket_errors} = ($r{connect} // 0) + ($r{read} // 0) + ($r{write} // 0) + ($r{timeout} // 0);
    # what the mix may answer: 200, 201 (pairing code), 403 (not paired), 429 (locked / rate limited)
    my %ok = map { $_ => 1 } (200, 201, 403, 429);
    $r{unexpected} = 0;
    $r{unexpected} += $r{codes}{$_} for grep { !$ok{$_} } keys %{ $r{codes} };
    $r{summary} = join(' ', map { "$_:$r{codes}{$_}" } sort keys %{ $r{codes} })
        . " socket_errors:$r{socket_errors}";
    return \%r;
}

# {"PATH STATUS" => count} from the edge's access log (combined format)
sub statuses_by_path ($ng) {
    my %c;
    for (split /\n/, $ng->access_log) {
        $c{"$1 $2"}++ if m{"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3}) };
    }
    return \%c;
}

# connections Redis has, but the one we ask on
sub redis_clients ($redis) {
    my $list = $redis->cmd('CLIENT', 'LIST');
    my @lines = grep { /\S/ } split /\n/, $list;
    return scalar(@lines) - 1;
}

# waits until the count is `want` (old workers finish their connections)
sub wait_clients ($redis, $want, $timeout = 10) {
    my $n;
    PgTest::wait_until(sub { $n = redis_clients($redis); $n == $want }, timeout => $timeout);
    return $n;
}

sub fail_account ($port, $account, $times) {
    my @s;
    push @s, http_get($port, '/login', headers => { 'X-Account' => $account, 'X-Pass' => 'bad' })->{status}
        for 1 .. $times;
    return @s;
}

sub lock_account ($port, $account) {
    fail_account($port, $account, 5);
    return http_get($port, '/login', headers => { 'X-Account' => $account, 'X-Pass' => 'good' })->{status};
}

# A user with a session (alice, via /auth/login), an approved pairing user
# (approved-user on telegram), a locked account (victim) and one with 3
# failures (half). Returns the session token.
sub setup_state ($redis, $ng) {
    my $port = $ng->port;
    my ($rc, $out, $err) = PgAuth::ctl_auth($redis, "pencil-pencil\n", qw(user add alice --password-stdin));
    die "user add: $err" if $rc;
    my $r = http_post_json($port, '/auth/login', { user => 'alice', password => 'pencil-pencil' });
    die "login: $r->{status}" unless $r->{status} == 200;
    my $token = $r->{json}{token};
    $r = http_post_json($port, '/pairing/request', { platform => 'telegram', user_id => 'approved-user' });
    die "pairing request: $r->{status}" unless $r->{status} == 201;
    $r = http_post_json($port, '/pairing/approve', { platform => 'telegram', code => $r->{json}{code} });
    die "approve: $r->{status}" unless $r->{status} == 200;
    $r = http_post_json($port, '/pairing/request', { platform => 'telegram', user_id => 'pending-user' });
    die "pairing request: $r->{status}" unless $r->{status} == 201;
    die "victim not locked" unless lock_account($port, 'victim') == 429;
    fail_account($port, 'half', 3);
    return $token;
}

# Removes the [alert] lines nginx writes for workers this test killed on
# purpose ("worker process PID exited on signal 9"), so that done()'s check
# still fails on any other alert.
sub strip_expected_alerts ($ng, @pids) {
    my $log = "$ng->{dir}/error.log";
    my $text = PgTest::read_file($log);
    my $n = 0;
    for my $pid (@pids) {
        $n += $text =~ s/^[^\n]*\[alert\][^\n]*worker process $pid exited on signal 9[^\n]*\n//mg;
    }
    PgTest::write_file($log, $text);
    return $n;
}

# A Redis with append-only persistence in the same dir and port as `redis`
# (PgTest's starts without): stops it, restarts it with appendonly yes.
sub aof_redis ($redis) {
    $redis->cmd('CONFIG', 'SET', 'appendonly', 'yes');
    $redis->cmd('CONFIG', 'SET', 'appendfsync', 'always');
    PgTest::wait_until(sub { ($redis->cmd('INFO', 'persistence') =~ /aof_rewrite_in_progress:0/)
                             && ($redis->cmd('INFO', 'persistence') =~ /aof_enabled:1/) }, timeout => 10);
    return $redis;
}

sub restart_aof ($redis) {
    $redis->stop;
    PgTest::wait_until(sub { !PgTest::_port_open($redis->{port}) }, timeout => 5);
    my $log = "$redis->{dir}/redis.log";
    $redis->{pid} = PgTest::_spawn([
        'redis-server', '--port', $redis->{port}, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no',
        '--dir', $redis->{dir},
    ], $log);
    PgTest::wait_until(sub {
        my $pong = eval { $redis->cmd_timeout(0.5, 'PING') };
        defined $pong && $pong eq 'PONG';
    }, timeout => 10) or die "redis did not come back\n" . PgTest::read_file($log);
    return $redis;
}

1;
