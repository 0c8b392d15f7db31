# The script-free reserve. The reserves of one key each that a worker made
# in one event-loop iteration, when that iteration made nothing else (low
# concurrency) and no more than four, on a single Redis whose clock the
# worker learned within the last second, are each one
# SET KEY "|||T|" NX PX 60000 instead of a script call:
# exactly what the script's fast path writes for a key that holds nothing.
# Only for a key pinned to the client's address ($remote_addr here; each
# client below is its own 127.x source address): a key with history costs
# the SET path a second round trip, which must tell nobody about another's
# key. A key anyone may name (an account) is always the script's.
# A key that holds anything (a failure, a lock, an attempt in flight) is
# decided by the script, as before; so is everything when the clock is not
# fresh. Exactness is the script's: the budget, the lock, the release of a
# reservation whose client went away.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use PgTest;

# an upstream whose connect never completes: the attempt stays in flight
my $hang_port = hanging_port();

my $redis = start_redis();
my $up    = start_upstream();
my $slow  = start_upstream(delay_ms => 400);
my $mid   = start_upstream(delay_ms => 150);
my $conf  = <<'CONF' =~ s/%%HANG_PORT%%/$hang_port/gr;
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=5s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy ip key=$remote_addr max_failures=3 window=60s lockout=60s;
    pairguard_policy acct key=$http_x_account max_failures=3 window=60s lockout=60s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    upstream hanging { server 127.0.0.1:%%HANG_PORT%%; }
    upstream slow { server 127.0.0.1:%%SLOW_PORT%%; }
    upstream mid { server 127.0.0.1:%%MID_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /ok {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/200;
        }
        location = /fail {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /acct {
            pairguard acct;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/200;
        }
        location = /acct_fail {
            pairguard acct;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /two {
            pairguard ip;
            pairguard acct;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/200;
        }
        location = /slow {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_pass http://slow/status/200;
        }
        location = /mid {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_pass http://mid/status/200;
        }
        location = /hang {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_connect_timeout 1500ms;
            proxy_pass http://hanging/status/200;
        }
    }
}
CONF
$conf =~ s/%%SLOW_PORT%%/$slow->port/ge;
$conf =~ s/%%MID_PORT%%/$mid->port/ge;
my $ng = start_nginx($conf, redis => $redis, upstream => $up, workers => 1);
# PG_REDIS_MODE=cluster (t/lib/PgTest.pm): a Redis Cluster never takes the
# script-free path; every reserve is the script's
my $cluster = ($ENV{PG_REDIS_MODE} // '') eq 'cluster';

# each client its own source address, so its own $remote_addr
my %addr;
sub addr ($client) {
    unless (exists $addr{$client}) {
        my $n = keys %addr;
        $addr{$client} = '127.0.' . (10 + int($n / 250)) . '.' . (1 + $n % 250);
    }
    return $addr{$client};
}
sub connect_as ($client) {
    IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, LocalAddr => addr($client), Proto => 'tcp')
        or die "connect: $!";
}
sub get ($path, $client, %h) { http_get($ng->port, $path, headers => {%h}, from => addr($client)) }
sub evalsha () { $redis->calls('evalsha') }
# Runs $code (a request and its checks), then checks that Redis ran two
# script calls for it: the reserve was the script's too, then the settle.
sub by_script ($name, $code) {
    my $e = evalsha;
    $code->();
    ok(wait_until(sub { evalsha() >= $e + 2 }, timeout => 3), $name);
}
sub redis_ms () {
    my $t = $redis->cmd('TIME');
    my ($s, $us) = ref $t ? @$t : ($t);
    return $s * 1000 + int($us / 1000);
}

# the first reserve goes to the script (no clock yet): 2 script calls
my $e = evalsha;
is(get('/ok', 'warm')->{status}, 200, 'warm-up allowed');
ok(wait_until(sub { evalsha() == $e + 2 }, timeout => 3), '  reserve and settle by script (the clock is not known yet)');
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 0 }, timeout => 3), '  a success leaves no key');

# fresh keys, one at a time, within the second: one script call a request
# (the settle); the reserve is the SET. (A second may pass on a slow
# machine: its next reserve learns the clock again, by script.)
$e = evalsha;
my $t0 = time;
my @st = map { get('/ok', "fresh$_")->{status} } 1 .. 8;
my $took = time - $t0;
is("@st", join(' ', ('200') x 8), 'eight fresh clients allowed');
ok(wait_until(sub { evalsha() >= $e + 8 }, timeout => 3), '  every settle sent');
my $calls = evalsha() - $e;
if ($cluster) {
    is($calls, 16, '  Redis Cluster: 16 script calls for 8 requests (the reserves too)');
} else {
    cmp_ok($calls, '<=', 8 + 1 + int($took), "  $calls script calls for 8 requests: the reserves went without the script")
        or diag "took ${took}s";
}
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 0 }, timeout => 3), '  and no key is left');

# what the SET writes, seen while the attempt is in flight: the script's
# fast-path value, "|||T|" with T Redis' now + 60 s (and a margin), the key
# expiring in 60 s
get('/ok', 'refresh');    # the clock learned afresh (or kept): a second to go
sleep 0.2;
my $sock = connect_as('inflight');
print $sock "GET /hang HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
my @k;
ok(wait_until(sub { @k = $redis->guard_keys; @k == 1 }, timeout => 2), 'an attempt in flight holds its key');
my $v   = $redis->cmd('GET', $k[0]) // '';
my $ttl = $redis->cmd('PTTL', $k[0]);
my $now = redis_ms();
like($v, qr/^\|\|\|\d{13}\|$/, '  its value holds only the reservation, in decimal');
my ($t) = $v =~ /(\d{13})/;
# Redis' now + 60 s, as the worker estimates it, plus a second's margin (the
# estimate lags by a round trip; a reservation must not end earlier than
# the script's)
my $late = ($t // 0) - ($now + 60000);
cmp_ok($late, '>=', -100, '  the reservation ends no earlier than Redis\' now + 60 s');
cmp_ok($late, '<=', 1600, '  and at most the margin later');
cmp_ok($ttl, '>', 58000, '  the key expires with it');
cmp_ok($ttl, '<=', 60000, '  (not later)');
my $reply = join '', <$sock>;
like($reply, qr{^HTTP/1\.1 504}, 'the upstream never answers: 504');
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 0 }, timeout => 3), '  neutral: the reservation is released');

# a key with history is decided by the script, exactly: three failures
# reach the upstream, then 429
$up->reset;
get('/ok', 'refresh2');
my @f = map { get('/fail', 'guesser')->{status} } 1 .. 5;
is("@f", '404 404 404 429 429', 'a guesser: three failures reach the upstream, then locked');
is($up->count('/status/404'), 3, '  the upstream saw exactly three');
my $locked = get('/fail', 'guesser');
is($locked->{status}, 429, '  still locked');
like($locked->{headers}{'retry-after'} // '', qr/^\d+$/, '  with Retry-After');
ok($redis->guard_keys >= 1, '  its key holds the lock');

# a key holding one failure: the SET finds it and the script decides. A
# further failure counts with it (locked at the third); a success clears it.
$up->reset;
get('/ok', 'refresh3');
is(get('/fail', 'once')->{status}, 404, 'one failure');
by_script('  decided by the script: reserve and settle', sub {
    is(get('/fail', 'once')->{status}, 404, 'a second guess of the same client reaches the upstream');
});
my @more = map { get('/fail', 'once')->{status} } 1 .. 2;
is("@more", '404 429', '  the first failure counted: the third locks');
is($up->count('/status/404'), 3, '  three reached the upstream');
get('/ok', 'refresh5');
is(get('/fail', 'twice')->{status}, 404, 'another client fails once');
by_script('  decided by the script', sub {
    is(get('/ok', 'twice')->{status}, 200, '  then succeeds');
});
my @again = map { get('/fail', 'twice')->{status} } 1 .. 4;
is("@again", '404 404 404 429', '  the success cleared its failure: three more, then locked');

# two keys: always the script
by_script('  by script: reserve and settle', sub {
    is(get('/two', 'stack', 'X-Account' => 'alice')->{status}, 200, 'two policies: allowed');
});

# a key anyone may name (an account): the script's, fresh or not, while the
# clock is fresh and the client's own key would go by SET. Fresh or with
# history, the same commands: one script call each way, no SET, so the
# answer's time does not tell whether another's account has failures
unless ($cluster) {
    # (within one second of the clock learned, as a client's own key
    # going by SET at the end shows: else this would check nothing)
    sleep 1.1;
    my @cmds = monitored(sub {
        get('/ok', 'refresh6');    # the clock learned now, by script
        is(get('/acct', 'prober', 'X-Account' => 'nobody-yet')->{status}, 200, 'an account key, fresh: allowed');
        is(get('/acct_fail', 'owner', 'X-Account' => 'carol')->{status}, 404, 'another account fails once');
        is(get('/acct', 'prober', 'X-Account' => 'carol')->{status}, 200, '  a stranger probes it: allowed');
        get('/ok', 'own-after');    # the clock still fresh: a SET
    });
    my @sets = grep { $_->[0] eq 'SET' } @cmds;
    is(scalar @sets, 1, '  no SET for an account key; one for the client\'s own key after them') or diag explain \@cmds;
    is(scalar(grep { $_->[0] eq 'EVALSHA' } @cmds), 2 + 6 + 1,
       '  the account reserves and settles, fresh or not: one script call each') or diag explain \@cmds;
}

# the clock goes stale after a second: the next reserve is the script's
sleep 1.3;
by_script('  by script (the clock is learned again)', sub {
    is(get('/ok', 'after-idle')->{status}, 200, 'after a second without a script reserve: allowed');
});

# a new Redis behind the same address (a restart, a failover behind one
# name) within the second: what the worker learned of the old one's clock is
# not used; the next reserve is the script's
unless ($cluster) {
    sleep 1.2;
    is(get('/ok', 'learn')->{status}, 200, 'the clock learned afresh by script');
    my $learned = time;
    $redis->restart;
    ok(wait_until(sub { my $l = eval { $redis->cmd_timeout(0.2, 'CLIENT', 'LIST') } // ''; (() = $l =~ /^id=/mg) >= 2 },
                  timeout => 3, interval => 0.01), '  Redis restarted; the worker connected again');
    note sprintf 'the worker is back %.2f s after it learned the clock', time - $learned;
    is(get('/ok', 'after-restart')->{status}, 200, '  a fresh client right after: allowed');
    ok(wait_until(sub { evalsha() >= 2 }, timeout => 3), '  by script: reserve and settle on the new connection')
        and is(evalsha(), 2, '  (exactly those two)');
}

# a client that hangs up while the SET waits for Redis: its reservation is
# released at once, not held for 60 s
get('/ok', 'refresh4');
# the keys left before it, once the refresh's settle is in (its reservation
# is a key until then)
sub key_set () { join ' ', sort $redis->guard_keys }
sub stable_keys () {
    my $keys;
    wait_until(sub { my $k = key_set(); sleep 0.2; $keys = key_set(); $keys eq $k }, timeout => 3);
    return $keys;
}
my $before = stable_keys();
$redis->cmd('CLIENT', 'PAUSE', 800, 'ALL');
my $s2 = connect_as('gone');
print $s2 "GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
sleep 0.2;
close $s2;
sleep 0.9;
ok(wait_until(sub { key_set() eq $before }, timeout => 3), 'a client gone while its SET waited: released')
    or diag explain [ map { [ $_, $redis->cmd('GET', $_) ] } $redis->guard_keys ];
is(get('/fail', 'gone')->{status}, 404, '  its key has its whole budget');

sub monitored ($code) { $redis->monitored($code) }
sub reserves_in ($cmd) { scalar(() = $cmd->[1] =~ /"r"/g) }

# Fresh clients at once: four reserves made in one iteration (the worker
# stopped while the four requests arrive, so that one wake-up reads them
# all) go as four SETs, none in a script call; their settles go by script.
# (A batch that also holds a settle sends its reserves the same way, before
# the script call: below.)
my ($worker) = PgTest::_children_of($ng->pid);
sub pause_worker () { stop_process($worker) }
sub open_request ($path, $client) { http_send(connect_as($client), 'GET', $path) }
sub status_of ($c) { http_answer($c)->{status} }
# The new key's value and the reservation it holds (undef: not one).
sub new_key_reservation (%before) {
    my @k;
    wait_until(sub { @k = grep { !$before{$_} } $redis->guard_keys; @k == 1 }, timeout => 3) or return;
    my $v = $redis->cmd('GET', $k[0]) // '';
    my ($t) = $v =~ /^\|\|\|(\d{13})\|$/;
    return ($v, $t);
}

unless ($cluster) {
    # Redis holds the SET (CLIENT PAUSE WRITE, as its own FAILOVER does)
    # longer than the margin: answered late, its reservation may end
    # earlier than the script's would. It is released, and the script
    # reserves.
    sleep 1.3;
    get('/ok', 'learn-pause');    # the clock learned by script, just now
    sleep 0.2;
    my %before = map { $_ => 1 } $redis->guard_keys;
    my $e0 = evalsha;
    $redis->cmd('CLIENT', 'PAUSE', 2000, 'WRITE');
    my $c = open_request('/hang', 'paused');
    sleep 2.3;
    my ($v, $t) = new_key_reservation(%before);
    ok(defined $t, 'a SET Redis ran 2 s late: the key holds one reservation') or diag "value: " . ($v // 'none');
    # the script's would end at the pause's end + 60 s (the SET's, made
    # before the pause, a second earlier)
    cmp_ok(($t // 0) - (redis_ms() + 60000), '>=', -500, '  ending no earlier than the script\'s would');
    # at once: the 504's settle (another script call) comes 1.5 s later
    cmp_ok(evalsha() - $e0, '>=', 1, '  the script\'s (released, then reserved again)');
    is(status_of($c), 504, '  the attempt went on (504: the upstream never answers)');
    ok(wait_until(sub { scalar(grep { !$before{$_} } $redis->guard_keys) == 0 }, timeout => 3), '  and nothing is left');

    # A worker that stalls between Redis running the script that teaches it
    # Redis' clock and reading the reply: what it learns is Redis' time when
    # the batch was sent (so older than the stall), not when it was read
    sleep 1.3;
    $redis->cmd('CLIENT', 'PAUSE', 400, 'ALL');
    my $learner = open_request('/ok', 'learn-stall');
    sleep 0.1;
    pause_worker();    # Redis answers while the worker is stopped
    sleep 2;
    kill 'CONT', $worker;
    is(status_of($learner), 200, 'a worker stopped 2 s before reading the reply that taught it the clock');
    sleep 0.2;
    %before = map { $_ => 1 } $redis->guard_keys;
    my $sent = redis_ms();
    $c = open_request('/hang', 'after-stall');
    ($v, $t) = new_key_reservation(%before);
    ok(defined $t, '  the next fresh key holds one reservation') or diag "value: " . ($v // 'none');
    # the learned clock ran 2 s behind: a SET would end it about a second
    # before the script's, which runs after $sent
    cmp_ok(($t // 0) - ($sent + 60000), '>=', 0, '  ending no earlier than the script\'s would');
    is(status_of($c), 504, '  (504)');
    ok(wait_until(sub { scalar(grep { !$before{$_} } $redis->guard_keys) == 0 }, timeout => 3), '  and nothing is left');
}

# Sends one request per client on connections opened beforehand, all while
# the worker is stopped: its next wake-up reads them all in one iteration.
# The worker learns Redis' clock just before (a stale clock, then a
# request's reserve by script). Returns the statuses and the commands Redis
# was sent meanwhile.
sub one_iteration (@clients) {
    sleep 1.1;    # the clock goes stale
    my @conns = map { connect_as($_) } @clients;
    sleep 0.2;    # accepted, waiting for their requests
    get('/ok', "learn-$clients[0]");
    my @st;
    my @cmds = monitored(sub {
        pause_worker();
        http_send($conns[$_], 'GET', '/ok') for 0 .. $#clients;
        sleep 0.2;
        kill 'CONT', $worker;
        @st = map { status_of($_) } @conns;
    });
    return (\@st, \@cmds);
}

$before = stable_keys();
my ($st, $cmds) = one_iteration(map { "burst$_" } 1 .. 4);
is("@$st", '200 200 200 200', 'four fresh clients in one iteration: allowed');
my @sets  = grep { $_->[0] eq 'SET' } @$cmds;
my @evals = grep { $_->[0] eq 'EVALSHA' } @$cmds;
my $script_reserves = 0;
$script_reserves += reserves_in($_) for @evals;
if ($cluster) {
    is(scalar @sets, 0, '  Redis Cluster: no reserve without the script');
    is($script_reserves, 4, '  the four reserves are the script\'s');
} else {
    is(scalar @sets, 4, '  four SETs: the reserves went without the script')
        or diag explain $cmds;
    is($script_reserves, 0, '  no reserve in a script call');
    cmp_ok(scalar @evals, '>=', 1, '  the settles went by script');
}
ok(wait_until(sub { key_set() eq $before }, timeout => 3), '  every reservation released')
    or diag explain [ map { [ $_, $redis->cmd('GET', $_) ] } $redis->guard_keys ];

# five at once: more reserves than SETs pay for; one script call takes them
($st, $cmds) = one_iteration(map { "five$_" } 1 .. 5);
is("@$st", '200 200 200 200 200', 'five fresh clients in one iteration: allowed');
is(scalar(grep { $_->[0] eq 'SET' } @$cmds), 0, '  no SET');
my @with_reserves = grep { reserves_in($_) > 0 } grep { $_->[0] eq 'EVALSHA' } @$cmds;
$script_reserves = 0;
$script_reserves += reserves_in($_) for @with_reserves;
is($script_reserves, 5, '  the five reserves are the script\'s') or diag explain $cmds;
is(scalar @with_reserves, 1, '  in one script call') or diag explain $cmds unless $cluster;
ok(wait_until(sub { key_set() eq $before }, timeout => 3), '  every reservation released');

# A reserve and another request's settle in one iteration (at low
# concurrency a common pair): the reserve goes as a SET before the script
# call, which holds the settle alone; the reserve does not wait for the
# script. The worker is stopped while the first request's answer arrives
# from the upstream and the second request arrives from its client, so that
# one wake-up reads both.
unless ($cluster) {
    sleep 1.1;    # the clock goes stale: the first request's reserve teaches it
    my $cb = connect_as('mix-b');
    my $ca = connect_as('mix-a');
    sleep 0.2;
    my %before = map { $_ => 1 } $redis->guard_keys;
    my ($sa, $sb);
    my @cmds = monitored(sub {
        http_send($ca, 'GET', '/mid');     # answered by the upstream 150 ms later
        wait_until(sub { scalar(grep { !$before{$_} } $redis->guard_keys) == 1 }, timeout => 2, interval => 0.01);
        sleep 0.05;                        # forwarded to the upstream
        pause_worker();
        sleep 0.3;                         # the upstream's answer waits in the socket
        http_send($cb, 'GET', '/ok');
        sleep 0.1;
        kill 'CONT', $worker;
        $sa = status_of($ca);
        $sb = status_of($cb);
    });
    is("$sa $sb", '200 200', 'a settle and another client\'s fresh reserve in one iteration: both allowed');
    my @evals = grep { $_->[0] eq 'EVALSHA' } @cmds;
    my @sets  = grep { $_->[0] eq 'SET' } @cmds;
    is(scalar @sets, 1, '  the reserve went as a SET') or diag explain \@cmds;
    my @mixed = grep { reserves_in($_) > 0 && $_->[1] =~ /"s"/ } @evals;
    is(scalar @mixed, 0, '  no script call holds both') or diag explain \@cmds;
    my $set_at = (grep { $cmds[$_][0] eq 'SET' } 0 .. $#cmds)[0] // -1;
    my $settle_at = (grep { $cmds[$_][0] eq 'EVALSHA' && $cmds[$_][1] =~ /"s"/ } 0 .. $#cmds)[0] // -1;
    ok($set_at >= 0 && $set_at < $settle_at, '  the SET was sent before the settle\'s script call') or diag explain \@cmds;
    ok(wait_until(sub { scalar(grep { !$before{$_} } $redis->guard_keys) == 0 }, timeout => 3), '  nothing is left');
}

# A worker that stops gracefully sends its settles before it exits: four
# requests in flight (a slow upstream) when nginx is told to quit; their
# answers come while the worker is exiting, and so do their settles
get('/ok', 'refresh7');
$before = stable_keys();
my @socks = map {
    my $c = connect_as("quit$_");
    print $c "GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    $c;
} 1 .. 4;
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) >= 4 + scalar(split ' ', $before) }, timeout => 2),
   'four attempts in flight');
kill 'QUIT', $ng->pid;
my @answers = map { status_of($_) } @socks;
is("@answers", '200 200 200 200', '  nginx told to quit: the four are answered');
my $exited = wait_until(sub { !PgTest::_alive($ng->pid) }, timeout => 5);
ok($exited, "  nginx exited");
ok(wait_until(sub { key_set() eq $before }, timeout => 3), '  their settles were sent: no reservation left')
    or diag explain [ map { [ $_, $redis->cmd('GET', $_) ] } $redis->guard_keys ];
$ng->{pid} = undef if $exited;    # exited, and reaped (else done() stops it)

done();
