# Pairing codes are secrets (SPEC section 3): shown once, to the requester,
# and nowhere else. After requests, right and wrong approvals (over HTTP and
# from pairguardctl), a lockout, listings and a revocation, no code, in any of
# the forms it was issued or typed, appears in the error log (debug level),
# the access log, any Redis key or value, any command Redis received
# (MONITOR), any event published, or the CLI's output. Listing ids are a
# prefix of the code's HMAC, never part of the code.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Digest::SHA qw(hmac_sha256);
use PgTest;

my $CTL = ctl_path();
plan skip_all => "$CTL not built (scripts/build.sh)" unless -x $CTL;

my $POLICY = 'code_ttl=1h max_pending=3 request_interval=1s max_failures=3 lockout=1s code_max_failures=2'
    . ' platforms=telegram,whatsapp,cli';

my $redis = start_redis();
my $up    = start_upstream();

# Everything Redis receives, and everything published on the events channel,
# from before nginx starts.
sub tap (@cmd) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port, Proto => 'tcp', Timeout => 3)
        or die "redis tap: $!";
    my $req = '*' . @cmd . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @cmd);
    syswrite($s, $req);
    $s->blocking(0);
    return { sock => $s, sel => IO::Select->new($s), buf => '' };
}
sub drain ($t, $wait = 0.05) {
    while ($t->{sel}->can_read($wait)) {
        my $n = sysread($t->{sock}, $t->{buf}, 1 << 20, length $t->{buf});
        last unless $n;
        $wait = 0.01;
    }
    return $t->{buf};
}
my $monitor = tap('MONITOR');
my $events  = tap('SUBSCRIBE', 'pairguard:events');

my $ng = start_nginx(<<'CONF', redis => $redis, upstream => $up, log_level => 'debug', vars => { policy => $POLICY });
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_pairing_policy %%POLICY%%;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /pair/request  { pairguard_pairing request; }
        location = /pair/approve  { pairguard_pairing approve; }
        location = /pair/pending  { pairguard_pairing pending; }
        location = /pair/approved { pairguard_pairing approved; }

        location = /bot {
            pairguard_require_paired platform=$http_x_platform user=$http_x_user_id;
            proxy_set_header X-Pairguard-User $pairguard_user;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
my $P = $ng->port;

my (%codes, @typed, $cli_output);    # code => platform; every form sent
sub request_code ($platform, $user) {
    my $r = http_post_json($P, '/pair/request', { platform => $platform, user_id => $user, user_name => "N $user" });
    $codes{ $r->{json}{code} } = $platform if $r->{status} == 201;
    return $r;
}
sub approve ($platform, $code) {
    push @typed, $code;
    return http_post_json($P, '/pair/approve', { platform => $platform, code => $code });
}
sub ctl (@args) {
    my ($out, $err) = (testdir() . '/ctl.out', testdir() . '/ctl.err');
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $out) or POSIX::_exit(126);
        open(STDERR, '>', $err) or POSIX::_exit(126);
        { no warnings 'exec'; exec { $CTL } $CTL, '--redis', '127.0.0.1:' . $redis->port,
              '--secret-file', secret_file(), '--policy', $POLICY, @args; }
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $rc = $? >> 8;
    $cli_output .= read_file($out) . read_file($err);
    return $rc;
}
sub dashed ($c) { substr($c, 0, 4) . '-' . substr($c, 4) }
sub wrong_code ($i) { my @a = split //, 'HJKMNPQRSTUVWXYZ'; join '', 'W', map { $a[($i * 5 + $_ * 3) % 16] } 1 .. 7 }

# --- the flow, with right and wrong approvals ------------------------------------

my @u = map { request_code('telegram', "t$_") } 1 .. 3;
is_deeply([map { $_->{status} } @u], [201, 201, 201], 'three telegram users get codes');
my @tg = map { $_->{json}{code} } @u;
is(request_code('telegram', 't4')->{status}, 429, 'a fourth is refused (too_many_pending)');
is(request_code('telegram', 't1')->{status}, 429, 'a repeated request is refused (rate_limited)');
my $wa = request_code('whatsapp', '+15551234567')->{json}{code};
ok($wa, 'a whatsapp user gets a code');
my $cli_code = request_code('cli', 'c1')->{json}{code};
ok($cli_code, 'a user gets a code that the CLI will approve');

my $listing = http_get($P, '/pair/pending')->{json}{pending} // [];
is(scalar @$listing, 5, 'five codes are pending');

is(approve('telegram', lc dashed($tg[0]))->{status}, 200, 'a right approval in lower case with a dash');
is(approve('whatsapp', join(' ', unpack('(A2)*', $wa)))->{status}, 200, 'a right approval with spaces');
is(ctl('approve', 'cli', lc $cli_code), 0, 'a right approval from pairguardctl');
is(http_get($P, '/bot', headers => { 'X-Platform' => 'telegram', 'X-User-Id' => 't1' })->{status}, 200,
    'the approved user passes require_paired');

my @wrong = map { wrong_code($_) } 1 .. 4;
is(ctl('approve', 'telegram', $wrong[0]), 1, 'a wrong approval from pairguardctl is refused (exit 1)');
is(approve('telegram', lc dashed($wrong[1]))->{status}, 404, 'a second wrong approval over HTTP: 404 (both remaining codes burned)');
is(approve('telegram', $wrong[2])->{status}, 404, 'a third wrong approval over HTTP: 404 (and the platform locks)');
is(approve('telegram', $tg[1])->{status}, 429, 'a burned code on the locked platform: 429');
is(ctl('approve', 'telegram', dashed($wrong[3])), 1, 'pairguardctl on the locked platform: refused');
like($ng->error_log, qr/pairguard: 2 pending code\(s\) of platform "telegram" burned/, 'the burn is logged');
like($ng->error_log, qr/pairguard: pairing lockout start, platform "telegram", 1s/, 'the lockout is logged');
sleep 1.1;
is(approve('telegram', $tg[2])->{status}, 404, 'after the lock a burned code is answered 404');
is(http($P, 'DELETE', '/pair/approved?platform=telegram&user_id=t1')->{status}, 200, 'a revocation');
is(http_get($P, '/pair/approved')->{status}, 200, 'the approved listing');
my $later = request_code('cli', 'c2')->{json}{code};
ok($later, 'one more code stays pending');
is(http($P, 'DELETE', '/pair/pending?platform=whatsapp')->{status}, 200, 'a clearing of pending codes');
push @typed, @wrong;

# --- listing ids ------------------------------------------------------------------

my $secret = read_file(secret_file());
my %id_of = map { my $c = $_; ($c => unpack('H8', hmac_sha256("c\0$codes{$c}\0$c", $secret))) } keys %codes;
my @ids = map { $_->{id} } @$listing;
is_deeply([sort @ids], [sort map { $id_of{$_} } grep { $_ ne $later } keys %codes],
    'each pending id is the first 8 hex digits of HMAC(secret, "c\0" platform "\0" code)');
my @id_in_code = grep { my $id = $_; grep { index(lc $_, $id) >= 0 } keys %codes } @ids;
ok(!@id_in_code, 'no pending id is a substring of a code (in any case)') or diag "@id_in_code";
is(scalar(grep { /^[0-9a-f]{8}$/ } @ids), scalar @ids, 'every id is 8 hex digits');

# --- nothing anywhere holds a code ---------------------------------------------------

my @all_codes = (sort(keys %codes), @wrong);
my %forms;
for my $c (@all_codes) {
    $forms{$_} = $c for $c, lc $c, dashed($c), lc dashed($c), join(' ', unpack('(A2)*', $c)),
        lc join(' ', unpack('(A2)*', $c)), join('-', split //, $c);
}
$forms{$_} //= $_ for @typed;
is(scalar(grep { /^[A-Z2-9]{8}$/ } @all_codes), 6 + 4, 'checking 6 issued and 4 wrong codes, in 7 forms each');

sub leaks ($hay) { sort grep { index($hay, $_) >= 0 } keys %forms }
sub no_leak ($what, $hay) {
    my @l = leaks($hay);
    ok(!@l, "no code in $what") or diag "found: @l";
}
ok(scalar(my @x = leaks($u[0]{body})) && scalar(my @y = leaks(join ' ', @typed)), 'the search finds a code where one is (a 201 answer, what was typed)');

my $mon = drain($monitor, 0.2);
my $ev = drain($events, 0.1);
$ng->stop;    # every log line written
my $err = $ng->error_log;
ok(length $err > 20000, 'the error log was written at debug level (' . length($err) . ' bytes)');
like($err, qr/\[debug\]/, '  with debug lines');
no_leak('the error log (debug)', $err);
my $acc = $ng->access_log;
like($acc, qr{"POST /pair/approve HTTP/1\.1" 404}, 'the access log has the approvals');
no_leak('the access log', $acc);
no_leak('nginx stderr', read_file($ng->dir . '/stderr.log'));
ok(length $cli_output, 'pairguardctl wrote something');
no_leak("pairguardctl's output", $cli_output);

like($mon, qr/EVALSHA|EVAL/i, 'MONITOR saw the scripts run');
like($mon, qr/"HSET"/, '  and the calls they made');
no_leak('any command Redis received (MONITOR, scripts included)', $mon);
my @msgs = $ev =~ /\$7\r\nmessage\r\n\$\d+\r\n[^\r]*\r\n\$\d+\r\n([^\r]*)\r\n/g;
ok(scalar @msgs >= 3, 'events were published (' . scalar(@msgs) . ')');
no_leak('the published events', join "\n", @msgs);
ok(!grep({ !/^(approved|revoked|unlocked|requested|wrong_approval|locked)\|/ } @msgs), 'events hold nothing in clear but their kind');
# (whole fields: a random base64 tag may contain "t1" by chance)
ok(!grep({ grep { /^(t1|15551234567|telegram|whatsapp)$/ || /15551234567|telegram|whatsapp/ } split /\|/ } @msgs),
    '  (no user id or platform name)');

# every key and value, by type
my @keys = $redis->scan_keys;
ok(scalar @keys >= 5, 'Redis holds the pairing state (' . scalar(@keys) . ' keys)');
my $dump = '';
for my $k (@keys) {
    my $type = $redis->cmd('TYPE', $k);
    my $v = $type eq 'string' ? [$redis->cmd('GET', $k)]
          : $type eq 'hash'   ? $redis->cmd('HGETALL', $k)
          : $type eq 'set'    ? $redis->cmd('SMEMBERS', $k)
          : $type eq 'zset'   ? $redis->cmd('ZRANGE', $k, 0, -1, 'WITHSCORES')
          : $type eq 'list'   ? $redis->cmd('LRANGE', $k, 0, -1)
          : $type eq 'stream' ? [map { @{ $_->[1] } } @{ $redis->cmd('XRANGE', $k, '-', '+') }]
          : ["(type $type)"];
    $dump .= "$k\n" . join("\n", map { $_ // '' } @$v) . "\n" . ($redis->cmd('DUMP', $k) // '') . "\n";
}
like($dump, qr/"user_id":"c2"/, 'the dump reads the values (a pending entry is there)');
no_leak('Redis (every key name and value: GET, HGETALL, SMEMBERS, ZRANGE, LRANGE, DUMP)', $dump);
my @odd = grep { !/^pairguard:(\{p:[A-Za-z0-9_-]{22}\}:(pending|approved|fail|lock|rate:[A-Za-z0-9_-]{22})|pairing:platforms|\{events\}-stream)$/ } @keys;
ok(!@odd, 'every key is a pairing key of the documented layout') or diag "odd: @odd";

done();
