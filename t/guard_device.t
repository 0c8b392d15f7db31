# Trusted devices (SPEC section 2, issue 13): an attacker who locks an account
# does not lock out the account's own devices. A success hands out a cookie
# bound to the account; with it the device logs in past the account's lock
# on a budget of its own, after which that device is locked. Forged, expired
# and other accounts' cookies count as no cookie; no token reaches Redis or
# the logs; two nodes share devices; pairguardctl lists and unlocks them.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use MIME::Base64 ();
use PgTest;
use PgAuth qw(ctl_auth);

# a self-signed certificate for the https server
my $dir = testdir();
system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost "
    . "-keyout '$dir/tls.key' -out '$dir/tls.crt' 2>/dev/null") == 0 or die "openssl req failed\n";
chmod 0644, "$dir/tls.key";

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_events_log on;
    # the account is the "username" field of the body
    pairguard_policy login_account key=$pairguard_body_username
                     max_failures=3 window=60s lockout=60s
                     device_cookie=pg_dev device_ttl=1h device_max_failures=2;
    # a short-lived device cookie, keyed on a header
    pairguard_policy short key=$http_x_account max_failures=2 window=60s lockout=60s
                     device_cookie=pg_short device_ttl=2s;
    pairguard_policy dry key=$pairguard_body_username max_failures=2 window=60s lockout=60s
                     device_cookie=pg_dry;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /api/login {
            pairguard login_account;
            pairguard_failure_status 401;
            proxy_pass http://backend;
        }

        # the header-keyed policy: 200 with ?ok, 401 without
        location = /short {
            pairguard short;
            pairguard_failure_status 401;
            set $st 401;
            if ($arg_ok) { set $st 200; }
            proxy_pass http://backend/status/$st;
        }

        location = /dry/api/login {
            pairguard dry;
            pairguard_dry_run on;
            pairguard_failure_status 401;
            proxy_pass http://backend/api/login;
        }

        listen 127.0.0.1:%%PORT_TLS%% ssl;
        ssl_certificate     %%TESTDIR%%/tls.crt;
        ssl_certificate_key %%TESTDIR%%/tls.key;

        # reaches the guarded login through an internal redirect (POST kept)
        location = /redirected {
            rewrite ^ /api/login last;
        }
    }
}
CONF
my $na = start_nginx($conf, redis => $redis, upstream => $up, workers => 2);
my $nb = start_nginx($conf, redis => $redis, upstream => $up);

my @tokens;    # every token handed out, to look for in Redis and the logs

sub login ($ng, $user, $password, %o) {
    my %h;
    $h{Cookie} = $o{cookie} if defined $o{cookie};
    return http_post_json($ng->port, $o{path} // '/api/login', { username => $user, password => $password },
        headers => \%h);
}
sub right ($ng, $user, %o) { login($ng, $user, "$user-password", %o) }
sub wrong ($ng, $user, %o) { login($ng, $user, 'guess', %o) }

# The pg_dev token a response sets (undef: none).
sub token_of ($r, $name = 'pg_dev') {
    for my $c (@{ $r->{header_list}{'set-cookie'} // [] }) {
        if ($c =~ /^\Q$name\E=([^;]*)/) { push @tokens, $1; return $1 }
    }
    return undef;
}
sub logins () { $up->count('/api/login') }

# --- a success hands out a device cookie --------------------------------------

my $r = right($na, 'alice');
is($r->{status}, 200, 'alice logs in');
my @set = @{ $r->{header_list}{'set-cookie'} // [] };
is(scalar @set, 1, 'the success sets one cookie');
like($set[0] // '', qr/^pg_dev=[A-Za-z0-9_-]{55}; Max-Age=3600; Path=\/; HttpOnly; SameSite=Strict$/,
    'the cookie is the 55-character token with Max-Age=device_ttl, Path=/, HttpOnly and SameSite=Strict');
unlike($set[0] // '', qr/Secure/, 'over plain http the cookie is not marked Secure');
my $phone = token_of($r);
my $laptop = token_of(right($na, 'alice'));
ok($phone && $laptop && $phone ne $laptop, 'a second success without a cookie makes a second device');
my $bob_dev = token_of(right($na, 'bob'));
ok($bob_dev, 'bob has a device too');

is(scalar @{ wrong($na, 'alice')->{header_list}{'set-cookie'} // [] }, 0, 'a failure sets no cookie');

my $tls = `curl -sk -D - -o /dev/null -H 'Content-Type: application/json' -d '{"username":"ivan","password":"ivan-password"}' https://127.0.0.1:@{[ $na->port('PORT_TLS') ]}/api/login`;
like($tls, qr/^set-cookie: pg_dev=([A-Za-z0-9_-]{55}); Max-Age=3600; Path=\/; HttpOnly; SameSite=Strict; Secure\r?$/mi,
    'over https the cookie is also marked Secure');
push @tokens, $1 if $tls =~ /pg_dev=([A-Za-z0-9_-]{55})/;
is(right($na, '')->{status}, 401, 'a login without a username (the policy is skipped) fails upstream');

# --- the attacker locks the account; alice's devices still log in --------------

my @st = map { wrong($na, 'alice')->{status} } 1 .. 2;
is_deeply(\@st, [401, 401], 'the attacker guesses alice\'s password (three failures with the one above)');
$r = wrong($na, 'alice');
is($r->{status}, 429, 'alice is locked');
is(right($na, 'alice')->{status}, 429, 'the right password without a cookie is refused too');

my $before = logins();
$r = right($na, 'alice', cookie => "pg_dev=$phone");
is($r->{status}, 200, 'alice\'s phone logs in while her account is locked');
is(logins(), $before + 1, 'that login reached the upstream');
ok(!token_of($r), 'a fresh device\'s success sends no new cookie (renewed only past half of device_ttl)');
is(right($nb, 'alice', cookie => "pg_dev=$laptop")->{status}, 200, 'her laptop logs in through the other node');
is(right($na, 'alice')->{status}, 429, 'a cookieless request for alice is still refused');

# odd spellings of the Cookie header
is(right($na, 'alice', cookie => "theme=dark;   pg_dev = $phone ;lang=en")->{status}, 200,
    'the cookie is found among others, with odd spacing');
is(right($na, 'alice', cookie => "pg_dev=junk; pg_dev=$phone")->{status}, 200,
    'a duplicate junk cookie before the valid one does not hide it');
is(right($na, 'alice', cookie => "pg_dev=\"$phone\"")->{status}, 200, 'a quoted value is read');
is(right($na, 'alice', cookie => "xpg_dev=$phone; PG_DEV=$phone")->{status}, 429,
    'other cookie names (prefix, case) are not the device cookie');

# --- stolen, forged and expired cookies count as no cookie ---------------------

$before = logins();
is(wrong($na, 'alice', cookie => "pg_dev=$bob_dev")->{status}, 429, 'bob\'s cookie does not let a guess at alice through');
my $forged = $phone;
substr($forged, 30, 1) = substr($forged, 30, 1) eq 'A' ? 'B' : 'A';
is(wrong($na, 'alice', cookie => "pg_dev=$forged")->{status}, 429, 'a token with one character changed is ignored');
is(wrong($na, 'alice', cookie => 'pg_dev=' . ('A' x 55))->{status}, 429, 'a made-up token is ignored');
is(wrong($na, 'alice', cookie => "pg_dry=$phone")->{status}, 429, 'the token under another cookie name is ignored');
is(logins(), $before, 'none of them reached the upstream');

# a forged cookie on an account that is not locked counts on the account
@st = map { wrong($na, 'carol', cookie => "pg_dev=$forged")->{status} } 1 .. 3;
push @st, right($na, 'carol', cookie => "pg_dev=$forged")->{status};
is_deeply(\@st, [401, 401, 401, 429], 'failures with a forged cookie count on the account and lock it');

# another policy's token
my $short_tok = token_of(http_get($na->port, '/short?ok=1', headers => { 'X-Account' => 'alice' }), 'pg_short');
ok($short_tok, 'the header-keyed policy hands out its own cookie');
is(right($na, 'alice', cookie => "pg_dev=$short_tok")->{status}, 429, 'another policy\'s token for the same name is useless');

# expiry (device_ttl=2s): frank gets a cookie, is locked, then the cookie expires
my $f_tok = token_of(http_get($na->port, '/short?ok=1', headers => { 'X-Account' => 'frank' }), 'pg_short');
http_get($na->port, '/short', headers => { 'X-Account' => 'frank' }) for 1 .. 2;
is(http_get($na->port, '/short?ok=1', headers => { 'X-Account' => 'frank' })->{status}, 429, 'frank is locked');
is(http_get($na->port, '/short?ok=1', headers => { 'X-Account' => 'frank', Cookie => "pg_short=$f_tok" })->{status},
    200, 'frank\'s fresh device cookie gets him in');
# nginx's clock counts whole seconds: a token minted at second T expires at
# T+2 and renews from T+1 on; wait for that second itself (a fixed sleep
# could overshoot to T+2 on a slow machine, when the token has expired)
my $f_expires = unpack('Q>', substr(MIME::Base64::decode_base64url($f_tok // ''), 17, 8) // '') // 0;
my $wait = $f_expires - 1 + 0.1 - time;
sleep $wait if $wait > 0;
my $renewed = token_of(http_get($na->port, '/short?ok=1', headers => { 'X-Account' => 'frank', Cookie => "pg_short=$f_tok" }),
    'pg_short');
ok($renewed && $renewed ne $f_tok, 'past half of device_ttl a success renews the cookie');
sleep 2.1;
is(http_get($na->port, '/short?ok=1', headers => { 'X-Account' => 'frank', Cookie => "pg_short=$f_tok" })->{status},
    429, 'once device_ttl has passed the same cookie is ignored');
is(http_get($na->port, '/short?ok=1', headers => { 'X-Account' => 'frank', Cookie => "pg_short=$renewed" })->{status},
    429, 'and so is the renewed one, two seconds after its renewal') if $renewed;

# --- a device has its own budget ------------------------------------------------

my ($mark, $mark_b) = ($na->log_mark, $nb->log_mark);
@st = (wrong($na, 'alice', cookie => "pg_dev=$phone")->{status}, wrong($nb, 'alice', cookie => "pg_dev=$phone")->{status});
is_deeply(\@st, [401, 401], 'the phone has two wrong passwords of its own (device_max_failures=2), over both nodes');
$before = logins();
$r = right($na, 'alice', cookie => "pg_dev=$phone");
is($r->{status}, 429, 'then the phone is locked, even with the right password');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'with a Retry-After');
is(right($nb, 'alice', cookie => "pg_dev=$phone")->{status}, 429, 'on the other node too');
is(logins(), $before, 'the locked phone did not reach the upstream');
is(right($na, 'alice', cookie => "pg_dev=$laptop")->{status}, 200, 'the laptop is not locked by the phone\'s failures');
my ($dlabel) = wait_until(sub { ($na->log_since($mark) . $nb->log_since($mark_b)) =~ /pairguard: lockout start, policy "login_account", device ([0-9a-f]{8}), 60s/ ? $1 : undef }, timeout => 3);
ok($dlabel, 'the device\'s lock is logged with policy and a device label');
# the laptop's success settles after its answer has gone out: its reservation
# key may still be there for a moment
my $dkeys = 0;
wait_until(sub { ($dkeys = () = $redis->scan_keys('pairguard:{d:*')) == 1 }, timeout => 3);
is($dkeys, 1, 'the locked device has its own key in Redis (pairguard:{d:TAG})');
ok(wait_until(sub { ($na->log_since($mark) . $nb->log_since($mark_b)) =~ /pairguard: event \{"type":"lock".*"scope":"device","device":"$dlabel"/ }, timeout => 3),
    'the lock event names the device by its label') if $dlabel;

# --- pairguardctl lists and unlocks the device -----------------------------------

my ($rc, $out, $err) = ctl_auth($redis, undef, '--json', 'locks');
is($rc, 0, 'pairguardctl locks') or diag $err;
my $locks = eval { json_decode($out) } // {};
my @dev = grep { $_->{type} eq 'device' } @{ $locks->{locks} // [] };
is(scalar @dev, 1, 'one locked device is listed');
is($dev[0]{label}, $dlabel, 'by the label the log shows') if $dlabel;
my @acc = grep { $_->{type} eq 'guard' } @{ $locks->{locks} // [] };
ok(scalar @acc >= 2, 'the locked accounts are listed as guard keys');
unlike($out, qr/\Q$phone\E|\Q$laptop\E/, 'the listing holds no token');
($rc, $out) = ctl_auth($redis, undef, 'locks');
like($out, qr/^device\s+$dlabel\s/m, 'the table shows TYPE device and the label') if $dlabel;

($rc, undef, $err) = ctl_auth($redis, undef, 'unlock', '--device', 'zz');
is($rc, 2, 'unlock --device wants an 8-hex-digit label');
($rc, undef, $err) = ctl_auth($redis, undef, 'locks', '--device');
is($rc, 2, '--device goes with unlock only');
($rc, $out, $err) = ctl_auth($redis, undef, 'unlock', '--device', $dlabel // '00000000');
is($rc, 0, 'pairguardctl unlock --device LABEL') or diag $err;
like($out, qr/unlocked device $dlabel/, 'says what it unlocked') if $dlabel;
ok(wait_until(sub { right($na, 'alice', cookie => "pg_dev=$phone")->{status} == 200 }, timeout => 3),
    'the phone logs in again on the node that had cached its lock');
is(right($na, 'alice')->{status}, 429, 'the account itself stays locked');
($rc) = ctl_auth($redis, undef, 'unlock', '--device', $dlabel // '00000000');
is($rc, 1, 'unlocking it again finds nothing');

# --- internal redirects ------------------------------------------------------------

$r = http_post_json($na->port, '/redirected', { username => 'alice', password => 'alice-password' },
    headers => { Cookie => "pg_dev=$laptop" });
is($r->{status}, 200, 'the device passes the lock after a rewrite into the guarded login');
is(http_post_json($na->port, '/redirected', { username => 'alice', password => 'alice-password' })->{status}, 429,
    'without the cookie the redirect is refused');

# --- dry run --------------------------------------------------------------------------

my $dry_dev = token_of(right($na, 'gina', path => '/dry/api/login'), 'pg_dry');
ok($dry_dev, 'dry run still hands out device cookies (they are ready when it ends)');
wrong($na, 'gina', path => '/dry/api/login') for 1 .. 2;
$mark = $na->log_mark;
is(right($na, 'gina', path => '/dry/api/login')->{status}, 200, 'dry run: the locked account is let through');
like($na->log_since($mark), qr/dry run, would refuse, policy "dry", key [0-9a-f]{8}/, 'and logged as would refuse');
$mark = $na->log_mark;
is(right($na, 'gina', path => '/dry/api/login', cookie => "pg_dry=$dry_dev")->{status}, 200, 'dry run: the device logs in');
unlike($na->log_since($mark), qr/would refuse/, 'and the device would not have been refused');

# --- store down: devices work on a node's own memory ----------------------------------

my $nc = start_nginx($conf, redis => free_port(), upstream => $up);    # nothing listens there
my $down_dev = token_of(right($nc, 'hana'));
ok($down_dev, 'store down (local): a success still hands out a device cookie');
@st = map { wrong($nc, 'hana')->{status} } 1 .. 3;
is_deeply(\@st, [401, 401, 401], 'store down (local): three failures');
is(right($nc, 'hana')->{status}, 429, 'store down (local): the account is locked in shared memory');
is(right($nc, 'hana', cookie => "pg_dev=$down_dev")->{status}, 200, 'store down (local): the device still logs in');
@st = map { wrong($nc, 'hana', cookie => "pg_dev=$down_dev")->{status} } 1 .. 3;
is_deeply(\@st, [401, 401, 429], 'store down (local): the device is locked after its own two failures');

# --- nothing secret in Redis or the logs ----------------------------------------------

my $all = $redis->dump_all;
my @keys = sort keys %$all;
my @odd = grep { !/^pairguard:\{(?:d:)?[A-Za-z0-9_-]{16}\}$/ && $_ ne 'pairguard:{events}-stream' } @keys;
ok(!@odd, 'every key is an account key pairguard:{TAG} or a device key pairguard:{d:TAG}') or diag "odd: @odd";
my $blob = join "\n", map { join "\0", $_, $all->{$_}{value} // '', $all->{$_}{dump} // '' } @keys;
my @pieces = map { ($_, substr($_, 1, 21)) } grep { defined } @tokens;
ok(scalar @tokens >= 6, 'the test saw the tokens it looks for (' . scalar(@tokens) . ')');
my @in_redis = grep { index($blob, $_) >= 0 } @pieces;
ok(!@in_redis, 'Redis holds no token, nor the part that carries the device id') or diag "@in_redis";
# nginx's own debug log prints whole request and response headers (README);
# every other entry, and every entry of the module's, is looked at
my @entries = grep { !/\[debug\]/ || /pairguard/ } map { split /\n(?=\d{4}\/\d\d\/\d\d )/ } map { $_->error_log } $na, $nb, $nc;
my $logs = join("\n", @entries) . join('', map { $_->access_log } $na, $nb, $nc);
my @in_log = grep { index($logs, $_) >= 0 } @pieces;
ok(!@in_log, 'neither the error logs (but nginx\'s own debug header dumps) nor the access logs hold a token')
    or diag "@in_log";
like($na->error_log, qr/lockout start, policy "login_account", key [0-9a-f]{8}/, 'the account\'s lock is logged as a key');

done();
