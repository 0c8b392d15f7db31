# Owner warnings (SPEC section 5, issue 13): wrong pairing approvals and a
# guard lockout are published and kept in the capped event stream with no
# secret in them; pairguardctl events lists them and --follow prints new ones;
# pairguard_events_log on writes each event once per node in the error log.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use PgTest;

my $CTL = ctl_path();
plan skip_all => "$CTL not built (scripts/build.sh)" unless -x $CTL;

my $POLICY = 'code_ttl=30s max_pending=3 request_interval=1s max_failures=3 lockout=30s code_max_failures=5'
    . ' platforms=telegram';
my $ACCOUNT = 'alice-raw-account-value';

my $redis = start_redis();
my $up    = start_upstream();
my $tmpl  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_pairing_policy %%POLICY%%;
    pairguard_policy login key=$http_x_account max_failures=3 window=10s lockout=1s;
    pairguard_events_log %%EVLOG%%;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /pair/request  { pairguard_pairing request; }
        location = /pair/approve  { pairguard_pairing approve; }

        location = /api/provision/pair {
            pairguard login;
            pairguard_failure_status 404;
            proxy_pass http://backend;
        }
    }
}
CONF
# node A logs events (two workers: still once), node B does not
my $na = start_nginx($tmpl, redis => $redis, upstream => $up, vars => { policy => $POLICY, evlog => 'on' });
my $nb = start_nginx($tmpl, redis => $redis, upstream => $up, vars => { policy => $POLICY, evlog => 'off' });
my ($A, $B) = ($na->port, $nb->port);
sleep 0.3;    # the workers' subscriptions

sub ctl_env ($env, @args) {
    my ($out, $err) = (testdir() . '/ctl.out', testdir() . '/ctl.err');
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $out) or POSIX::_exit(126);
        open(STDERR, '>', $err) or POSIX::_exit(126);
        $ENV{$_} = $env->{$_} for keys %$env;
        delete $ENV{$_} for grep { !exists $env->{$_} } qw(PAIRGUARD_REDIS PAIRGUARD_SECRET_FILE PAIRGUARD_PREFIX PAIRGUARD_PAIRING_POLICY);
        { no warnings "exec"; exec { $CTL } $CTL, @args; }
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    return ($? >> 8, read_file($out), read_file($err));
}
sub ctl (@args) {
    return ctl_env({}, '--redis', '127.0.0.1:' . $redis->port, '--secret-file', secret_file(), '--policy', $POLICY, @args);
}
sub stream_payloads () {
    my $r = $redis->cmd('XRANGE', 'pairguard:{events}-stream', '-', '+');
    return [map { $_->[1][1] } @{ $r // [] }];
}

# --- wrong approvals lock the platform ------------------------------------

my $r = http_post_json($A, '/pair/request', { platform => 'telegram', user_id => 'u-1001', user_name => 'Bob' });
is($r->{status}, 201, 'a pairing code is issued');
my $code = $r->{json}{code} // 'none';
my @wrong = qw(ZZZZ2222 YYYY3333 XXXX4444);
for my $w (@wrong) {
    my $a = http_post_json($B, '/pair/approve', { platform => 'telegram', code => $w });
    is($a->{status} >= 400, 1, "wrong approval $w is refused ($a->{status})");
}

# --- a guard key locks, and its lock ends ---------------------------------

for (1 .. 3) {
    my $g = http_post_json($A, '/api/provision/pair', { pairing_code => '000000' }, headers => { 'X-Account' => $ACCOUNT });
    is($g->{status}, 404, "failure $_ reaches the upstream");
}
$r = http_post_json($B, '/api/provision/pair', { pairing_code => '000000' }, headers => { 'X-Account' => $ACCOUNT });
is($r->{status}, 429, 'the account key is locked');
sleep 1.2;
$r = http_post_json($B, '/api/provision/pair', { pairing_code => '000000' }, headers => { 'X-Account' => $ACCOUNT });
is($r->{status}, 404, 'after the lockout the key is let through again');

# --- the stream ------------------------------------------------------------

my $p = stream_payloads();
my $kinds = join ' ', map { (split /\|/)[0] } @$p;
like($kinds, qr/^requested wrong_approval wrong_approval wrong_approval locked /, "pairing request, three wrong approvals, a lock ($kinds)");
is(scalar(grep { /^locked\|p\|/ } @$p), 1, 'one platform lock');
is(scalar(grep { /^locked\|g\|[A-Za-z0-9_-]{16}\|1000$/ } @$p), 1, 'one guard lock of 1000 ms');
is(scalar(grep { /^lock_ended\|g\|/ } @$p), 1, 'one guard lock end');
my $all = join "\n", @$p;
unlike($all, qr/\Q$code\E/, 'the issued code is in no event');
unlike($all, qr/\Q$_\E/, "the wrong code $_ is in no event") for @wrong;
unlike($all, qr/\Q$ACCOUNT\E|u-1001|Bob/, 'neither the raw key, the user id nor the user name is in any event');

# --- pairguardctl events ---------------------------------------------------

my ($rc, $out, $err) = ctl('events', '--json', '--count', '100');
is($rc, 0, 'pairguardctl events --json exits 0') or diag $err;
my @ev = map { json_decode($_) } split /\n/, $out;
is(scalar(@ev), scalar(@$p), 'it lists every event of the stream, one JSON object a line');
is_deeply([map { $_->{type} } @ev[0 .. 4]], [qw(pairing_request wrong_approval wrong_approval wrong_approval lock)],
    'types in order');
my ($glock) = grep { $_->{type} eq 'lock' && $_->{scope} eq 'guard' } @ev;
like($glock->{key} // '', qr/^[0-9a-f]{8}$/, 'a guard lock names the key by its 8-hex-digit label');
is($glock->{lock_ms}, 1000, '  with its length');
ok($glock->{ts_ms} > 1e12, '  and its time');
my ($plock) = grep { $_->{type} eq 'lock' && $_->{scope} eq 'platform' } @ev;
like($plock->{platform} // '', qr/^[0-9a-f]{8}$/, 'a platform lock names the platform by its label');
unlike($out, qr/\Q$code\E|\Q$ACCOUNT\E|u-1001|ZZZZ2222/, 'no secret in the listing');
($rc, $out) = ctl('events', '--count', '2');
is(scalar(split /\n/, $out), 2, '--count 2 lists two');
like($out, qr/^\d{4}-\d\d-\d\dT\S+Z \w+( \w+=\S+)*$/m, 'without --json: a line of time, type, labels');

# --- --follow --------------------------------------------------------------

my $fout = testdir() . '/follow.out';
my $fpid = fork() // die "fork: $!";
if ($fpid == 0) {
    open(STDOUT, '>', $fout) or POSIX::_exit(126);
    open(STDERR, '>', testdir() . '/follow.err') or POSIX::_exit(126);
    { no warnings "exec"; exec { $CTL } $CTL, '--redis', '127.0.0.1:' . $redis->port, 'events', '--follow', '--json', '--count', '0'; }
    POSIX::_exit(127);
}
sleep 0.5;
($rc) = ctl('unlock', '--platform', 'telegram');
is($rc, 0, 'the platform is unlocked with pairguardctl');
my $got = wait_until(sub { my $t = read_file($fout) // ''; $t =~ /"unlock"/ ? $t : undef }, timeout => 5);
ok($got, '--follow prints the new event');
my @fl = split /\n/, $got // '';
is(scalar(@fl), 1, '  only the new one (--count 0)');
is(json_decode($fl[0] // '{}')->{scope}, 'platform', '  the platform unlock');
kill 'INT', $fpid;
my $t0 = time;
my $waited = 0;
while (time - $t0 < 3) { if (waitpid($fpid, POSIX::WNOHANG()) == $fpid) { $waited = 1; last } sleep 0.05 }
ok($waited, '--follow ends on SIGINT');
is($? >> 8, 0, '  with status 0') if $waited;
if (!$waited) { kill 'KILL', $fpid; waitpid($fpid, 0) }

# --- pairguard_events_log ------------------------------------------------

my $n = scalar(@{ stream_payloads() });
my $logged = sub ($ng) { [ $ng->error_log =~ /pairguard: event (\{[^\n]*\})/g ] };
ok(wait_until(sub { @{ $logged->($na) } >= $n }, timeout => 3), "node A logged the $n events");
sleep 0.3;
my @la = @{ $logged->($na) };
is(scalar(@la), $n, 'each event exactly once on node A (two workers)');
my %types;
$types{ json_decode($_)->{type} // 'bad' }++ for @la;
is_deeply(\%types, { pairing_request => 1, wrong_approval => 3, lock => 2, lock_end => 1, unlock => 1 },
    'the logged events by type');
like($na->error_log, qr/\[notice\] \d+#\d+: pairguard: event \{"type":"wrong_approval"/, 'at notice, as one JSON line');
is(scalar(@{ $logged->($nb) }), 0, 'node B (pairguard_events_log off) logs none');
# (the debug-level log of the test nginx shows request headers: only the
# event lines are ours to check)
unlike(join("\n", @la), qr/\Q$ACCOUNT\E|\Q$code\E|ZZZZ2222|u-1001/, 'no secret in the logged events');

done();
