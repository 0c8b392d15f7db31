# The pairing flow at the edge (SPEC section 3, seeds 000 and 001), over HTTP
# against two nginx nodes (two workers each) sharing one Redis: a user asks
# for a code, the owner lists and approves it, the user's requests then pass
# `pairguard_require_paired` with $pairguard_user, and a revocation on one
# node refuses the user on every node at once.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use PgTest;

my $INTERVAL = 2;    # request_interval, seconds

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_pairing_policy code_ttl=1h max_pending=3 request_interval=2s
                             max_failures=5 lockout=1h code_max_failures=5
                             platforms=telegram,whatsapp,discord;

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
my $na = start_nginx($conf, redis => $redis, upstream => $up, workers => 2);
my $nb = start_nginx($conf, redis => $redis, upstream => $up, workers => 2);
my ($A, $B) = ($na->port, $nb->port);

my $CODE_RE = qr/^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{8}$/;

sub request_code ($port, $platform, $user, $name = undef) {
    my %b = (platform => $platform, user_id => $user);
    $b{user_name} = $name if defined $name;
    return http_post_json($port, '/pair/request', \%b);
}
sub approve ($port, $platform, $code) {
    return http_post_json($port, '/pair/approve', { platform => $platform, code => $code });
}
sub pending ($port, $q = '') { http_get($port, "/pair/pending$q") }
sub approved ($port, $q = '') { http_get($port, "/pair/approved$q") }
sub bot ($port, $platform, $user) {
    my %h;
    $h{'X-Platform'} = $platform if defined $platform;
    $h{'X-User-Id'} = $user if defined $user;
    return http_get($port, '/bot', headers => \%h);
}
sub bot_statuses ($platform, $user, $n = 4) {
    return [map { bot($_, $platform, $user)->{status} } map { ($A, $B) } 1 .. $n];
}
# "abcd-efgh", "AB CD EF GH", ...: what an owner might type
sub typed ($code, $how) {
    return lc(substr($code, 0, 4)) . '-' . lc(substr($code, 4)) if $how eq 'lower-dash';
    return join(' ', substr($code, 0, 2), substr($code, 2, 2), substr($code, 4, 2), substr($code, 6)) if $how eq 'spaces';
    return join('-', map { substr($code, $_, 1) } 0 .. 7) if $how eq 'dashes';
    return lc($code) if $how eq 'lower';
    return $code;
}
sub statuses_all ($want, $got) { !grep { $_ != $want } @$got }

my %codes;    # every code issued: for the listing checks

# --- invalid input changes nothing ------------------------------------------

{
    my @bad = (
        ['a body that is not JSON', '{"platform":"telegram",'],
        ['a JSON array', '["telegram","1001"]'],
        ['an empty body', ''],
        ['a missing platform', '{"user_id":"1001"}'],
        ['a missing user_id', '{"platform":"telegram"}'],
        ['a blank user_id', '{"platform":"telegram","user_id":"   "}'],
        ['a user_id with a control character', '{"platform":"telegram","user_id":"10\u000101"}'],
        ['a user_id that is an object', '{"platform":"telegram","user_id":{"id":1}}'],
        ['a user_name that is a number', '{"platform":"telegram","user_id":"1001","user_name":7}'],
        ['a platform with a space', '{"platform":"tele gram","user_id":"1001"}'],
        ['a platform of 65 characters', '{"platform":"' . ('a' x 65) . '","user_id":"1001"}'],
        ['a platform outside platforms=', '{"platform":"signal","user_id":"1001"}'],
        ['a duplicate field', '{"platform":"telegram","platform":"whatsapp","user_id":"1001"}'],
    );
    for my $case (@bad) {
        my ($what, $body) = @$case;
        my $r = http($A, 'POST', '/pair/request', body => $body, headers => { 'Content-Type' => 'application/json' });
        is($r->{status}, 400, "request with $what is refused with 400");
        is($r->{json}{error} // '', 'invalid_request', "  and the error is invalid_request");
        ok(length($r->{json}{message} // ''), "  with a message ($what)");
    }
    my $r = request_code($A, 'signal', '1001');
    like($r->{json}{message} // '', qr/platform/, 'the refusal of a platform outside platforms= says so');

    my @bad_approve = (
        ['a body that is not JSON', 'platform=telegram&code=ABCDEFGH'],
        ['a missing code', '{"platform":"telegram"}'],
        ['a missing platform', '{"code":"ABCDEFGH"}'],
        ['a code that is a number', '{"platform":"telegram","code":12345678}'],
        ['a malformed platform', '{"platform":"tele/gram","code":"ABCDEFGH"}'],
        ['a platform outside platforms=', '{"platform":"signal","code":"ABCDEFGH"}'],
    );
    for my $case (@bad_approve) {
        my ($what, $body) = @$case;
        my $r = http($A, 'POST', '/pair/approve', body => $body, headers => { 'Content-Type' => 'application/json' });
        is($r->{status}, 400, "approve with $what is refused with 400");
        is($r->{json}{error} // '', 'invalid_request', "  and the error is invalid_request ($what)");
    }
    $r = approve($A, 'telegram', 'O0I1-O0I1');
    is($r->{status}, 404, 'an approval with something that cannot be a code is answered 404');
    is($r->{json}{error} // '', 'invalid_code', '  as invalid_code');

    $r = http($A, 'DELETE', '/pair/approved?platform=telegram');
    is($r->{status}, 400, 'a revocation without user_id is refused with 400');
    $r = http($A, 'DELETE', '/pair/approved?user_id=1001');
    is($r->{status}, 400, 'a revocation without platform is refused with 400');
    $r = pending($A, '?platform=Bad%20Name');
    is($r->{status}, 400, 'a listing with a malformed platform is refused with 400');

    my @keys = $redis->scan_keys;
    is(scalar @keys, 0, 'none of these refusals wrote anything to Redis') or diag "keys: @keys";
}

# --- wrong methods ------------------------------------------------------------

{
    for my $case (['GET', '/pair/request', 'POST'], ['PUT', '/pair/approve', 'POST'], ['DELETE', '/pair/request', 'POST'],
                  ['POST', '/pair/pending', 'GET, DELETE'], ['PUT', '/pair/approved', 'GET, DELETE']) {
        my ($m, $path, $allow) = @$case;
        my $r = http($A, $m, $path, $m eq 'GET' || $m eq 'DELETE' ? () : (json => {}));
        is($r->{status}, 405, "$m $path is answered 405");
        is($r->{json}{error} // '', 'method_not_allowed', "  with error method_not_allowed");
        is($r->{headers}{allow} // '', $allow, "  and Allow: $allow");
    }
}

# --- a user asks for a code -------------------------------------------------

my $t_alice = time;
my $r = request_code($A, 'telegram', ' 1001 ', 'Alice');
is($r->{status}, 201, 'a first request for a code is answered 201');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'the answer is JSON');
like($r->{json}{code} // '', $CODE_RE, 'the code is 8 symbols of ABCDEFGHJKLMNPQRSTUVWXYZ23456789');
is($r->{json}{expires_in}, 3600, 'expires_in is code_ttl in seconds');
is_deeply([sort keys %{ $r->{json} // {} }], [qw(code expires_in)], 'the answer holds code and expires_in only');
my $alice = $r->{json}{code} // 'XXXXXXXX';
$codes{$alice} = 'alice';

$r = request_code($B, 'telegram', '1001', 'Alice');
is($r->{status}, 429, 'a second request by the same user within request_interval is refused with 429 (other node)');
is($r->{json}{error} // '', 'rate_limited', '  as rate_limited');
my $ra = $r->{headers}{'retry-after'} // '';
like($ra, qr/^\d+$/, '  with a numeric Retry-After');
ok($ra >= 1 && $ra <= $INTERVAL, "  within request_interval ($ra s)");
is($r->{json}{retry_after}, $ra, '  and retry_after in the body equal to Retry-After');

my %distinct;
for (1 .. 6) { my $c = request_code($A, 'discord', "user-$_")->{json}{code}; $distinct{$c} = "user-$_" if $c }
is(scalar keys %distinct, 3, 'codes are different for different users (three on another platform)');
$codes{$_} = 'discord' for keys %distinct;

# --- whatsapp aliases are one user ------------------------------------------

$r = request_code($A, 'whatsapp', '+15551234567', 'Wanda');
is($r->{status}, 201, 'whatsapp user +15551234567 gets a code');
my $wanda = $r->{json}{code} // 'XXXXXXXX';
$codes{$wanda} = 'wanda';
for my $form ('15551234567', '15551234567@s.whatsapp.net', '15551234567@c.us', ' +15551234567 ') {
    $r = request_code($B, 'whatsapp', $form, 'Wanda');
    is($r->{status} . ' ' . ($r->{json}{error} // ''), '429 rate_limited', "the same user as \"$form\" is rate limited");
}

# --- max_pending per platform -----------------------------------------------

my %wa;
for my $u ('15550000002', '15550000003') {
    $r = request_code($B, 'whatsapp', $u, "User $u");
    is($r->{status}, 201, "distinct whatsapp user $u gets a code");
    $wa{$u} = $r->{json}{code};
    $codes{ $r->{json}{code} // '' } = $u;
}
$r = request_code($A, 'whatsapp', '15550000004', 'Fourth');
is($r->{status}, 429, 'a 4th distinct user on the platform is refused with 429 (max_pending=3)');
is($r->{json}{error} // '', 'too_many_pending', '  as too_many_pending');
my $ra2 = $r->{headers}{'retry-after'} // 0;
ok($ra2 > 3500 && $ra2 <= 3600, "  with Retry-After until the oldest code expires ($ra2 s)");
is($r->{json}{retry_after}, $ra2, '  and the same retry_after in the body');
$r = request_code($A, 'whatsapp', '15550000004', 'Fourth');
is($r->{json}{error} // '', 'too_many_pending', 'a refused request sets no rate marker (refused again as too_many_pending)');

# --- pending listing ----------------------------------------------------------

$r = pending($A);
is($r->{status}, 200, 'GET pending is answered 200');
my @all = @{ $r->{json}{pending} // [] };
is(scalar @all, 7, 'without ?platform= it lists every platform (1 telegram, 3 discord, 3 whatsapp)');
is_deeply([sort keys %{ $all[0] // {} }], [qw(age_seconds expires_in id platform user_id user_name)],
    'an entry has platform, id, user_id, user_name, age_seconds, expires_in');
my %plat;
$plat{ $_->{platform} }++ for @all;
is_deeply(\%plat, { telegram => 1, discord => 3, whatsapp => 3 }, 'entries carry their platform');

$r = pending($B, '?platform=whatsapp');
my @wa = @{ $r->{json}{pending} // [] };
is(scalar @wa, 3, '?platform=whatsapp lists the three whatsapp codes (other node)');
ok(!grep({ $_->{platform} ne 'whatsapp' } @wa), '  and only whatsapp ones');
my ($wanda_entry) = grep { $_->{user_id} eq '15551234567' } @wa;
ok($wanda_entry, 'the whatsapp user is listed under the normalised id 15551234567');
is($wanda_entry->{user_name}, 'Wanda', '  with the name given');
($r) = grep { $_->{platform} eq 'telegram' } @all;
is($r->{user_id}, '1001', 'the telegram user id is trimmed');
ok(!grep({ !($_->{id} =~ /^[0-9a-f]{8}$/) } @all), 'every id is 8 hex digits');
my %ids = map { $_->{id} => 1 } @all;
is(scalar keys %ids, 7, 'ids are distinct');
my @id_leaks = grep { my $id = $_; grep { index(lc $_, $id) >= 0 || index(lc $id, lc $_) >= 0 } keys %codes } keys %ids;
ok(!@id_leaks, 'no id is (part of) a code, in any case');
ok(!grep({ my $e = $_; grep { $_ ne 'id' && $e->{$_} =~ $CODE_RE } keys %$e } @all), 'no listing field holds a code (ids: 8 hex digits, checked above)');
ok(!grep({ $_->{age_seconds} < 0 || $_->{age_seconds} > 30 } @all), 'age_seconds is small and not negative');
ok(!grep({ $_->{expires_in} < 3560 || $_->{expires_in} > 3600 } @all), 'expires_in counts down from code_ttl');
is_deeply(pending($A, '?platform=telegram')->{json}, { pending => [grep { $_->{platform} eq 'telegram' } @all] },
    '?platform=telegram lists only the telegram code');
is_deeply(pending($A, '?platform=slack')->{json}, { pending => [] }, 'a platform with no codes lists nothing');

# --- approval -----------------------------------------------------------------

# a user that is not approved: refused on both nodes (and each worker caches it)
is_deeply(bot_statuses('telegram', '1001'), [(403) x 8], 'before approval the user is refused on both nodes');

$r = approve($B, 'telegram', typed($alice, 'lower-dash'));
is($r->{status}, 200, 'approve with lower case and a dash is answered 200 (node B)');
is_deeply($r->{json}, { platform => 'telegram', user_id => '1001', user_name => 'Alice' },
    '  with the platform, user_id and user_name');
like($nb->error_log, qr/\[notice\].*pairguard: pairing approved, platform "telegram"/, 'the approval is logged at notice');

# the approval event reaches every worker over its Redis subscription, a
# moment after the approve answer (under load, after a request sent at
# once): 0.2 s later, well inside the cache's 1 s bound (without the event
# the refusals cached just above would still be served)
sleep 0.2;
my $t0 = time;
my $st = bot_statuses('telegram', '1001');
my $dt = time - $t0;
is_deeply($st, [(200) x 8], 'right after approval on node B the user passes on both nodes (no stale refusal)');

$up->reset;
$r = bot($A, 'telegram', '1001');
is($r->{status}, 200, 'the approved user reaches the upstream through require_paired');
is($r->{json}{headers}{'x-pairguard-user'} // '', '1001', 'the upstream sees $pairguard_user = the user id');
is($up->count('/echo'), 1, 'the upstream saw that one request');

$r = bot($A, 'telegram', '9999');
is($r->{status}, 403, 'an unpaired user gets 403');
like($r->{headers}{'content-type'} // '', qr{^application/json}, '  as JSON');
is_deeply($r->{json}, { error => 'not_paired' }, '  {"error":"not_paired"}');
is(bot($A, 'whatsapp', '1001')->{status}, 403, 'the approved user id on another platform is not paired');
is(bot($A, undef, undef)->{status}, 403, 'a request without platform or user gets 403');
is(bot($A, 'telegram', undef)->{status}, 403, 'a request without user gets 403');
is($up->count('/echo'), 1, 'the upstream never saw the refused requests');

$r = approve($A, 'telegram', $alice);
is($r->{status}, 404, 'a code approves only once (404 afterwards)');
is_deeply($r->{json}, { error => 'invalid_code' }, '  as invalid_code');

# whatsapp: approve with spaces, on the node that did not issue it
is(bot($A, 'whatsapp', '+15551234567')->{status}, 403, 'the whatsapp user is not paired yet');
$r = approve($B, 'whatsapp', typed($wanda, 'spaces'));
is($r->{status}, 200, 'approve with spaces is answered 200');
is($r->{json}{user_id} // '', '15551234567', '  with the normalised whatsapp id');
for my $form ('+15551234567', '15551234567', '15551234567@s.whatsapp.net', '15551234567@c.us') {
    $r = bot($A, 'whatsapp', $form);
    is($r->{status}, 200, "the whatsapp user passes as \"$form\"");
    is($r->{json}{headers}{'x-pairguard-user'} // '', '15551234567', '  and the upstream sees 15551234567');
}
$r = approve($A, 'whatsapp', typed($wa{15550000002}, 'dashes'));
is($r->{status}, 200, 'approve with a dash between every symbol is answered 200');
my ($discord_code) = sort keys %distinct;
my $discord_user = $distinct{$discord_code} // '';
$r = approve($A, 'discord', $discord_code);
is($r->{status}, 200, 'a discord code approves too');

# --- approved listing ---------------------------------------------------------

$r = approved($B);
is($r->{status}, 200, 'GET approved is answered 200');
my @ap = @{ $r->{json}{approved} // [] };
is(scalar @ap, 4, 'four approved users across platforms');
is_deeply([sort keys %{ $ap[0] // {} }], [qw(approved_at platform user_id user_name)],
    'an entry has platform, user_id, user_name, approved_at');
ok(!grep({ abs($_->{approved_at} - time) > 30 } @ap), 'approved_at is Unix seconds');
my ($alice_ap) = grep { $_->{platform} eq 'telegram' } @ap;
is_deeply([$alice_ap->{user_id}, $alice_ap->{user_name}], ['1001', 'Alice'], 'the telegram user is listed with her name');
$r = approved($A, '?platform=whatsapp');
is_deeply([sort map { $_->{user_id} } @{ $r->{json}{approved} // [] }], ['15550000002', '15551234567'],
    '?platform=whatsapp lists the two whatsapp users');
is(scalar @{ pending($A, '?platform=whatsapp')->{json}{pending} // [] }, 1, 'approved codes left the pending list');

# --- re-approval replaces -------------------------------------------------------

my $wait = $t_alice + $INTERVAL + 0.2 - time;
sleep $wait if $wait > 0;
$r = request_code($A, 'telegram', '1001', 'Alice B.');
is($r->{status}, 201, 'after request_interval the same user may ask again');
$codes{ $r->{json}{code} // '' } = 'alice2';
$r = approve($B, 'telegram', typed($r->{json}{code} // '', 'lower'));
is($r->{status}, 200, 'and the new code approves');
$r = approved($A, '?platform=telegram');
is_deeply([map { [$_->{user_id}, $_->{user_name}] } @{ $r->{json}{approved} // [] }], [['1001', 'Alice B.']],
    're-approval replaces the entry: still one, with the new name');

$r = request_code($B, 'whatsapp', '15551234567@c.us', 'Wanda W.');
is($r->{status}, 201, 'the whatsapp user asks again under another form');
$codes{ $r->{json}{code} // '' } = 'wanda2';
is(approve($A, 'whatsapp', $r->{json}{code} // '')->{status}, 200, 'and is approved again');
$r = approved($A, '?platform=whatsapp');
is_deeply([sort map { "$_->{user_id}/$_->{user_name}" } @{ $r->{json}{approved} // [] }],
    ['15550000002/User 15550000002', '15551234567/Wanda W.'], 'one entry for the user, under the normalised id');

# --- revocation reaches every node at once ----------------------------------

is_deeply(bot_statuses('telegram', '1001'), [(200) x 8], 'before revocation the user passes on both nodes (caches warm)');
$r = http($A, 'DELETE', '/pair/approved?platform=telegram&user_id=1001');
my $t_rev = time;
is($r->{status}, 200, 'DELETE approved is answered 200');
is_deeply($r->{json}, { revoked => JSON::PP::true }, '  {"revoked":true}');
sleep 0.05;
$st = bot_statuses('telegram', '1001');
my $took = time - $t_rev;
is_deeply($st, [(403) x 8], 'right after revocation on node A the user is refused on both nodes');
cmp_ok($took, '<', 0.5, sprintf('  checked within %.0f ms of the revocation (the cache TTL is 1 s)', $took * 1000));
like($na->error_log, qr/\[notice\].*pairguard: pairing revoked, platform "telegram"/, 'the revocation is logged at notice');

$r = http($A, 'DELETE', '/pair/approved?platform=telegram&user_id=1001');
is($r->{status}, 404, 'revoking again is answered 404');
is_deeply($r->{json}, { error => 'not_found' }, '  as not_found');

is_deeply(bot_statuses('whatsapp', '15551234567@s.whatsapp.net'), [(200) x 8], 'the whatsapp user passes on both nodes');
$r = http($B, 'DELETE', '/pair/approved?platform=whatsapp&user_id=%2B15551234567');
$t_rev = time;
is($r->{status}, 200, 'revoking the whatsapp user by another form (+N) on node B is answered 200');
sleep 0.05;
$st = bot_statuses('whatsapp', '15551234567');
$took = time - $t_rev;
is_deeply($st, [(403) x 8], 'right after revocation on node B the user is refused on both nodes');
cmp_ok($took, '<', 0.5, sprintf('  checked within %.0f ms', $took * 1000));
$r = approved($A, '?platform=whatsapp');
is_deeply([map { $_->{user_id} } @{ $r->{json}{approved} // [] }], ['15550000002'], 'the other whatsapp user stays approved');
is(bot($B, 'whatsapp', '15550000002')->{status}, 200, '  and still passes');

# --- clearing pending codes ---------------------------------------------------

$r = pending($A);
my $n_pending = scalar @{ $r->{json}{pending} // [] };
is($n_pending, 3, 'three codes are still pending (two discord, one whatsapp)');
$r = http($B, 'DELETE', '/pair/pending?platform=whatsapp');
is_deeply([$r->{status}, $r->{json}], [200, { cleared => 1 }], 'DELETE pending?platform=whatsapp clears one code');
$r = http($A, 'DELETE', '/pair/pending');
is_deeply([$r->{status}, $r->{json}], [200, { cleared => 2 }], 'DELETE pending clears the rest: {"cleared":2}');
is_deeply(pending($B)->{json}, { pending => [] }, 'nothing is pending any more');
$r = http($A, 'DELETE', '/pair/pending');
is_deeply($r->{json}, { cleared => 0 }, 'clearing again clears 0');
my ($cleared_code) = grep { $_ ne $discord_code } sort keys %distinct;
is(approve($A, 'discord', $cleared_code)->{status}, 404, 'a cleared code no longer approves');
is_deeply([map { bot($A, 'discord', $distinct{$_})->{status} } sort keys %distinct], [200, 403, 403],
    'only the approved discord user passes');

# --- a change behind the module's back is seen within the cache TTL (1 s) ------

{
    my $secret = read_file(secret_file());
    my $tag = encode_base64url(substr(hmac_sha256("p\0discord\0", $secret), 0, 16));
    my $key = "pairguard:{p:$tag}:approved";
    is($redis->cmd('HEXISTS', $key, $discord_user), 1, 'the approved discord user is where DESIGN.md says');
    is_deeply(bot_statuses('discord', $discord_user), [(200) x 8], 'and passes on both nodes (caches warm)');
    $redis->cmd('HDEL', $key, $discord_user);    # no event published
    my $t = time;
    my $stale = 0;
    my $gone = wait_until(sub {
        my $s = bot_statuses('discord', $discord_user, 2);
        $stale += grep { $_ == 200 } @$s;
        return !grep { $_ != 403 } @$s;
    }, timeout => 3, interval => 0.05);
    my $after = time - $t;
    ok($gone, 'an entry deleted straight in Redis (no event) stops passing');
    cmp_ok($after, '<', 1.5, sprintf('  within the 1 s approval cache TTL (%.2f s, %d stale answers meanwhile)', $after, $stale));
}

# --- the allowlist, once more, with state around ---------------------------------

my $before = join ',', $redis->scan_keys;
$r = request_code($A, 'signal', '1001', 'Sig');
is($r->{status}, 400, 'a request on a platform outside platforms= is still refused with 400');
is(join(',', $redis->scan_keys), $before, '  and adds no key to Redis');

# --- bodies ------------------------------------------------------------------------

$r = http($A, 'POST', '/pair/request', body => json_encode({ platform => 'telegram', user_id => 'no-ctype' }));
is($r->{status}, 201, 'a JSON body without Content-Type is accepted');
$r = http($A, 'POST', '/pair/request', json => { platform => 'telegram', user_id => 'big', user_name => 'x', pad => 'y' x 100000 });
is($r->{status}, 201, 'a body larger than client_body_buffer_size is read back from its file');
$r = request_code($A, 'telegram', 4711, 'Numeric');
is($r->{status}, 201, 'a numeric user_id (JSON integer) is accepted');

# --- Redis down -----------------------------------------------------------------------

$redis->stop;
$r = request_code($A, 'telegram', 'while-down');
is($r->{status}, 503, 'with Redis down a request is answered 503');
is_deeply($r->{json}, { error => 'store_unavailable' }, '  {"error":"store_unavailable"}');
is(approve($B, 'telegram', 'ABCDEFGH')->{status}, 503, 'so is an approval');
is(pending($A)->{status}, 503, 'and a listing');
is(bot($A, 'telegram', 'never-seen')->{status}, 503, 'require_paired with nothing cached answers 503');
$redis->start;
ok(wait_until(sub { request_code($A, 'telegram', 'after-' . time)->{status} == 201 }, timeout => 5),
    'once Redis is back, requests are served again');
# node B's workers reconnect on their own backoff (at most 2 s)
ok(wait_until(sub { bot($B, 'telegram', 'never-seen')->{status} == 403 }, timeout => 5),
    '  and require_paired answers again');

done();
