# Brute force against pairing approvals (seed 001): wrong approvals lock the
# platform, spend an attempt of every pending code and burn codes; codes
# expire; bursts of requests and of wrong approvals across two nodes cannot
# exceed max_pending or the failure budget; pairguardctl and the HTTP
# endpoints act on the same state and count toward the same lockout.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use PgTest;

my $CTL = ctl_path();
plan skip_all => "$CTL not built (scripts/build.sh)" unless -x $CTL;

# the limits of nodes A and B; the CLI gets the same with --policy
my $POLICY = 'code_ttl=30s max_pending=3 request_interval=1s max_failures=5 lockout=2s code_max_failures=3'
    . ' platforms=telegram,discord,burst,cli,cli2';

my $redis = start_redis();
my $up    = start_upstream();
my $tmpl  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
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
my $na = start_nginx($tmpl, redis => $redis, upstream => $up, vars => { policy => $POLICY });
my $nb = start_nginx($tmpl, redis => $redis, upstream => $up, vars => { policy => $POLICY });
# node C: codes live two seconds
my $nc = start_nginx($tmpl, redis => $redis, upstream => $up, vars => { policy => 'code_ttl=2s request_interval=1s platforms=expiry' });
my ($A, $B, $C) = ($na->port, $nb->port, $nc->port);

my $CODE_RE = qr/^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{8}$/;

sub request_code ($port, $platform, $user, $name = undef) {
    my %b = (platform => $platform, user_id => $user);
    $b{user_name} = $name if defined $name;
    return http_post_json($port, '/pair/request', \%b);
}
sub issue ($port, $platform, $user) {
    my $r = request_code($port, $platform, $user, "Name of $user");
    die "request $platform/$user: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json}{code};
}
sub approve ($port, $platform, $code) {
    return http_post_json($port, '/pair/approve', { platform => $platform, code => $code });
}
sub pending ($port, $platform) { http_get($port, "/pair/pending?platform=$platform")->{json}{pending} // [] }
sub bot ($port, $platform, $user) {
    return http_get($port, '/bot', headers => { 'X-Platform' => $platform, 'X-User-Id' => $user });
}
sub bot_statuses ($platform, $user, $n = 3) {
    return [map { bot($_, $platform, $user)->{status} } map { ($A, $B) } 1 .. $n];
}
sub summary ($r) { join ' ', $r->{status}, $r->{json}{error} // '' }

my %issued;    # codes ever issued, so that "wrong" codes never collide
my $wrong_n = 0;
my @ALPHA = split //, 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
sub wrong_code () {
    my $c;
    do {
        my $n = $wrong_n++;
        $c = 'WQ';
        for (1 .. 6) { $c .= $ALPHA[$n % 32]; $n = int($n / 32) }
    } while $issued{$c};
    return $c;
}
sub note_codes (@c) { $issued{$_} = 1 for grep { defined } @c }

# (exit status, stdout, stderr) of build/pairguardctl
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
sub ctl_json (@args) {
    my ($rc, $out, $err) = ctl('--json', @args);
    return ($rc, json_decode($out) // { unparsable => $out, stderr => $err });
}

sub platform_key ($platform, $what) {
    my $tag = encode_base64url(substr(hmac_sha256("p\0$platform\0", read_file(secret_file())), 0, 16));
    return "pairguard:{p:$tag}:$what";
}

# --- expiry, part 1: a code that lives 2 s (node C) ---------------------------

my $r = request_code($C, 'expiry', 'u1', 'Short');
is($r->{status}, 201, 'with code_ttl=2s a request is answered 201');
is($r->{json}{expires_in}, 2, '  with expires_in 2');
my $short = $r->{json}{code};
my $t_short = time;
note_codes($short);
my $p = pending($C, 'expiry');
is(scalar @$p, 1, 'the short-lived code is pending');
ok(@$p && $p->[0]{expires_in} >= 1 && $p->[0]{expires_in} <= 2, '  with expires_in of at most 2 s');

# --- wrong approvals: burned codes, platform lockout --------------------------

my $c1 = issue($A, 'telegram', 'u1');
my $c2 = issue($B, 'telegram', 'u2');
note_codes($c1, $c2);
is(scalar @{ pending($A, 'telegram') }, 2, 'two telegram codes are pending');

my @st = map { summary(approve($_ % 2 ? $A : $B, 'telegram', wrong_code())) } 1 .. 2;
is_deeply(\@st, [('404 invalid_code') x 2], 'two wrong approvals (on both nodes) are answered 404 invalid_code');
is(scalar @{ pending($A, 'telegram') }, 2, 'after two wrong approvals both codes are still pending (code_max_failures=3)');
my $mark_a = $na->log_mark;
is(summary(approve($A, 'telegram', wrong_code())), '404 invalid_code', 'a third wrong approval is answered 404');
is_deeply(pending($B, 'telegram'), [], 'the third wrong approval spent the third attempt of both codes: both burned');
like($na->log_since($mark_a), qr/\[notice\].*pairguard: 2 pending code\(s\) of platform "telegram" burned/,
    'the burned codes are logged at notice');
is(summary(approve($B, 'telegram', $c1)), '404 invalid_code', 'a burned code no longer approves');
# that was wrong approval number four

my $c3 = issue($A, 'telegram', 'u3');
note_codes($c3);
$mark_a = $na->log_mark;
is(summary(approve($A, 'telegram', wrong_code())), '404 invalid_code', 'the fifth wrong approval is still answered 404');
like($na->log_since($mark_a), qr/\[notice\].*pairguard: pairing lockout start, platform "telegram", 2s/,
    'and starts the lockout: logged at notice with platform and duration');
my $t_lock = time;

$r = approve($B, 'telegram', wrong_code());
is(summary($r), '429 locked', 'the next approval is refused with 429 locked (other node)');
my $ra = $r->{headers}{'retry-after'} // 0;
ok($ra >= 1 && $ra <= 2, "  with Retry-After within the 2 s lockout ($ra)");
is($r->{json}{retry_after}, $ra, '  and the same retry_after in the body');

$r = approve($A, 'telegram', $c3);
is(summary($r), '429 locked', 'a RIGHT code is refused while the platform is locked');
is(bot($A, 'telegram', 'u3')->{status}, 403, '  and its user is not paired');
$r = request_code($B, 'telegram', 'u4', 'Late');
is(summary($r), '429 locked', 'a new request on the locked platform is refused with 429 locked');
ok(($r->{json}{retry_after} // 0) >= 1 && ($r->{headers}{'retry-after'} // 0) >= 1, '  with retry_after and Retry-After');
is(summary(request_code($A, 'discord', 'u4', 'Elsewhere')), '201 ', 'other platforms are not locked');
my @p3 = @{ pending($A, 'telegram') };
is(scalar @p3, 1, 'the code issued after the burn is still pending while locked (one attempt spent)');

# --- the lock ends after its time ---------------------------------------------

my $wait = $t_lock + $ra + 0.1 - time;
sleep $wait if $wait > 0;
$r = approve($B, 'telegram', lc $c3);
is($r->{status}, 200, 'after Retry-After the right code approves (the lock ended)');
is($r->{json}{user_id} // '', 'u3', '  its user');
is(bot($A, 'telegram', 'u3')->{status}, 200, '  who now passes require_paired');
is(summary(approve($A, 'telegram', $c2)), '404 invalid_code', 'a burned code does not approve after the lock ended either');
is(summary(request_code($A, 'telegram', 'u4', 'Late')), '201 ', 'new requests are taken again');

# --- expiry, part 2 -------------------------------------------------------------

$wait = $t_short + 2.1 - time;
sleep $wait if $wait > 0;
is_deeply(pending($C, 'expiry'), [], 'after code_ttl the code is dropped from the pending listing');
is(summary(approve($C, 'expiry', $short)), '404 invalid_code', 'approving an expired code is answered 404 invalid_code');
is($redis->cmd('EXISTS', platform_key('expiry', 'pending')), 0, 'and no pending codes are left in Redis for it');
is(summary(request_code($C, 'expiry', 'u1', 'Short')), '201 ', 'the user may ask again');

# --- burst: 100 simultaneous requests from distinct users -------------------------

my @res = http_burst_responses([$A, $B], 100,
    sub ($i) { { method => 'POST', path => '/pair/request', json => { platform => 'burst', user_id => "user-$i" } } });
my %by;
$by{ summary($_) }++ for @res;
note explain \%by;
is($by{'201 '} // 0, 3, '100 simultaneous requests from distinct users on two nodes: exactly max_pending (3) get 201');
is($by{'429 too_many_pending'} // 0, 97, '  every other one is 429 too_many_pending (no error, no timeout)');
my @burst_codes = map { $_->{json}{code} } grep { $_->{status} == 201 } @res;
note_codes(@burst_codes);
my @bp = @{ pending($B, 'burst') };
is(scalar @bp, 3, 'the pending listing holds exactly 3 codes');
my %bp_users = map { $_->{user_id} => 1 } @bp;
my %ok_users = map { ("user-$_" => 1) } grep { $res[$_]{status} == 201 } 0 .. $#res;
is_deeply(\%bp_users, \%ok_users, '  for the users that got 201');

# --- burst: 50 simultaneous wrong approvals --------------------------------------

my ($ma, $mb) = ($na->log_mark, $nb->log_mark);
my @wrong = map { wrong_code() } 1 .. 50;
@res = http_burst_responses([$A, $B], 50,
    sub ($i) { { method => 'POST', path => '/pair/approve', json => { platform => 'burst', code => $wrong[$i] } } });
%by = ();
$by{ summary($_) }++ for @res;
note explain \%by;
is(($by{'404 invalid_code'} // 0) + ($by{'429 locked'} // 0), 50, '50 simultaneous wrong approvals: every answer is 404 or 429 locked');
is($by{'404 invalid_code'} // 0, 5, '  exactly max_failures (5) of them were judged, the rest refused as locked');
is(summary(approve($A, 'burst', $burst_codes[0] // 'XXXXXXXX')), '429 locked', 'the platform is locked afterwards');
is_deeply(pending($A, 'burst'), [], 'every pending code was burned (each spent code_max_failures = 3 attempts)');
my $logs = $na->log_since($ma) . $nb->log_since($mb);
my $burned = 0;
$burned += $1 while $logs =~ /pairguard: (\d+) pending code\(s\) of platform "burst" burned/g;
is($burned, 3, 'the burned codes are logged: 3 in all');
my @starts = $logs =~ /pairguard: pairing lockout start, platform "burst"/g;
is(scalar @starts, 1, 'exactly one lockout start is logged across both nodes');

# --- the CLI and HTTP act on the same state --------------------------------------

my $cc = issue($A, 'cli', 'cli-user');
note_codes($cc);
my ($rc, $out, $err) = ctl('approve', 'cli', lc(substr($cc, 0, 4)) . '-' . substr($cc, 4));
is($rc, 0, 'a code requested over HTTP is approved with pairguardctl approve (exit 0)');
like($out, qr/approved cli user cli-user/, '  which says whom it approved');
my $ap = http_get($B, '/pair/approved?platform=cli')->{json}{approved} // [];
is_deeply([map { [$_->{user_id}, $_->{user_name}] } @$ap], [['cli-user', 'Name of cli-user']],
    'the CLI approval is visible in GET approved');
is_deeply(bot_statuses('cli', 'cli-user'), [(200) x 6], 'and the user passes require_paired on both nodes');

($rc, $out) = ctl('revoke', 'cli', 'cli-user');
my $t_rev = time;
is($rc, 0, 'pairguardctl revoke exits 0');
sleep 0.05;
my $s = bot_statuses('cli', 'cli-user');
my $took = time - $t_rev;
is_deeply($s, [(403) x 6], 'right after pairguardctl revoke the user is refused on both nodes');
cmp_ok($took, '<', 0.5, sprintf('  checked within %.0f ms of the revocation', $took * 1000));
($rc, undef, $err) = ctl('revoke', 'cli', 'cli-user');
is($rc, 1, 'revoking again from the CLI exits 1 (not found)');
is(summary(http($A, 'DELETE', '/pair/approved?platform=cli&user_id=cli-user')), '404 not_found',
    '  and HTTP agrees: 404 not_found');

# the same approval the other way round: approved over HTTP, seen by the CLI
my $cc2 = issue($B, 'cli', 'cli-user-2');
note_codes($cc2);
is(approve($A, 'cli', $cc2)->{status}, 200, 'a code approved over HTTP');
my $j;
($rc, $j) = ctl_json('approved', 'cli');
is_deeply([map { $_->{user_id} } @{ $j->{approved} // [] }], ['cli-user-2'], '  is listed by pairguardctl approved');
is_deeply($j, http_get($A, '/pair/approved?platform=cli')->{json}, 'pairguardctl --json approved equals GET approved');

# wrong approvals from both sides count toward one lockout
my $cc3 = issue($A, 'cli', 'cli-user-3');
note_codes($cc3);
my @mixed;
push @mixed, 'http ' . summary(approve($A, 'cli', wrong_code()));
($rc) = ctl('approve', 'cli', wrong_code());
push @mixed, "cli $rc";
push @mixed, 'http ' . summary(approve($B, 'cli', wrong_code()));
($rc) = ctl('approve', 'cli', wrong_code());
push @mixed, "cli $rc";
($rc, $out, $err) = ctl('approve', 'cli', wrong_code());
push @mixed, "cli $rc";
is_deeply(\@mixed, ['http 404 invalid_code', 'cli 1', 'http 404 invalid_code', 'cli 1', 'cli 1'],
    'five wrong approvals, alternating HTTP and CLI: each refused (404 / exit 1)');
like($err, qr/locked for 2s/, 'the fifth, from the CLI, says approvals are now locked for 2s');
$r = approve($B, 'cli', $cc3);
is(summary($r), '429 locked', 'HTTP approvals are then locked, even with the right code');
($rc, $j) = ctl_json('approve', 'cli', $cc3);
is($rc, 1, 'pairguardctl approve on the locked platform exits 1');
is($j->{error} // '', 'locked', '  with {"error":"locked"} under --json');
ok(($j->{retry_after} // 0) >= 1, '  and retry_after');
is(summary(request_code($A, 'cli', 'cli-user-4')), '429 locked', 'and new HTTP requests on the platform are locked');
($rc, $j) = ctl_json('locks');
ok((grep { ($_->{platform} // '') eq 'cli' && $_->{locked} } @{ $j->{locks} // [] }), 'pairguardctl locks shows the platform lock');

# pending listings: same shapes from the CLI and HTTP
my @c4 = (issue($A, 'cli2', 'p-1'), issue($B, 'cli2', 'p-2'));
note_codes(@c4);
($rc, $j) = ctl_json('pending', 'cli2');
is($rc, 0, 'pairguardctl --json pending exits 0');
my $h = http_get($A, '/pair/pending?platform=cli2')->{json};
my @cli2_ids = map { $_->{id} } @{ $h->{pending} // [] };
is(scalar @{ $j->{pending} // [] }, 2, '  and lists the two codes');
sub shape ($list) {
    return [map { my $e = $_; [sort keys %$e] } @$list];
}
is_deeply(shape($j->{pending} // []), shape($h->{pending} // []), 'its entries have exactly the fields of GET pending');
sub fixed ($list) { [map { my %e = %$_; delete @e{qw(age_seconds expires_in)}; \%e } @$list] }
is_deeply(fixed($j->{pending} // []), fixed($h->{pending} // []), '  the same platform, id, user_id, user_name, in the same order');
my @close = map { abs($j->{pending}[$_]{expires_in} - $h->{pending}[$_]{expires_in}) <= 1
                  && abs($j->{pending}[$_]{age_seconds} - $h->{pending}[$_]{age_seconds}) <= 1 } 0 .. 1;
ok(!grep({ !$_ } @close), '  and the same ages and expiries (to the second)');
($rc, $j) = ctl_json('pending');
my $all = http_get($B, '/pair/pending')->{json};
is_deeply([sort map { $_->{id} } @{ $j->{pending} // [] }], [sort map { $_->{id} } @{ $all->{pending} // [] }],
    'without a platform the CLI and HTTP list the same codes');

# environment defaults
($rc, $out) = ctl_env({ PAIRGUARD_REDIS => '127.0.0.1:' . $redis->port, PAIRGUARD_SECRET_FILE => secret_file() },
    '--json', 'pending', 'cli2');
is($rc, 0, 'PAIRGUARD_REDIS and PAIRGUARD_SECRET_FILE stand in for --redis and --secret-file');
is_deeply([map { $_->{id} } @{ (json_decode($out) // {})->{pending} // [] }], \@cli2_ids, '  and list the same codes');

($rc, $j) = ctl_json('clear-pending', 'cli2');
is_deeply([$rc, $j], [0, { cleared => 2 }], 'pairguardctl clear-pending answers as DELETE pending would');
is_deeply(pending($A, 'cli2'), [], '  and HTTP sees nothing pending');
is(summary(approve($A, 'cli2', $c4[0])), '404 invalid_code', '  and the cleared code does not approve');

done();
