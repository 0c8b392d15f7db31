# Public-key challenge-response at the edge (SPEC section 4, seed 003):
# `pairguard_auth challenge` hands out a single-use nonce bound to the user,
# `pairguard_auth verify` takes an Ed25519 or ECDSA P-256 signature over
# "pairguard-auth-v1\nHOST\nUSER\nNONCE" and answers a session token.
# Replays, expired or foreign nonces, other hosts and revoked keys fail with
# the same 403; unknown users get nonces like everyone; key rotation ends the
# user's sessions everywhere; Redis never holds a nonce.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use MIME::Base64 qw(encode_base64 decode_base64);
use PgTest;
use PgAuth;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy challenge_ttl=%%CTTL%% max_failures=50;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /auth/challenge { pairguard_auth challenge; }
        location = /auth/verify    { pairguard_auth verify; }
        location = /app {
            pairguard_auth_require;
            proxy_set_header X-Pairguard-User $pairguard_user;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
my $na = start_nginx($conf, redis => $redis, upstream => $up, vars => { cttl => '5m' });
my $nb = start_nginx($conf, redis => $redis, upstream => $up, vars => { cttl => '2s' });
my ($A, $B) = ($na->port, $nb->port);

my $dir = testdir();
sub openssl (@args) {
    system('openssl', @args) == 0 or die "openssl @args failed\n";
}
sub new_key ($name, @alg) {
    openssl('genpkey', @alg, '-out', "$dir/$name.key");
    openssl('pkey', '-in', "$dir/$name.key", '-pubout', '-out', "$dir/$name.pub");
    return "$dir/$name.key";
}
new_key('ed', '-algorithm', 'ed25519');
new_key('ec', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256');
new_key('ed2', '-algorithm', 'ed25519');

# base64 signature of the message by key $name (Ed25519 raw, ECDSA DER over SHA-256)
sub sign ($name, $host, $user, $nonce) {
    write_file("$dir/msg", "pairguard-auth-v1\n$host\n$user\n$nonce");
    my $sig = "$dir/sig";
    if ($name =~ /^ed/) {
        openssl('pkeyutl', '-sign', '-inkey', "$dir/$name.key", '-rawin', '-in', "$dir/msg", '-out', $sig);
    } else {
        openssl('dgst', '-sha256', '-sign', "$dir/$name.key", '-out', $sig, "$dir/msg");
    }
    return encode_base64(read_file($sig), '');
}

for ([qw(erin ed)], [qw(frank ec)]) {
    my ($u, $k) = @$_;
    my ($rc, undef, $err) = ctl_auth($redis, undef, 'user', 'add', $u, '--pubkey', "$dir/$k.pub");
    is($rc, 0, "pairguardctl adds $u with a key") or diag($err);
}

sub challenge ($port, $user) { http_post_json($port, '/auth/challenge', { user => $user }) }
sub verify ($port, $user, $sig) { http_post_json($port, '/auth/verify', { user => $user, signature => $sig }) }
sub app ($port, $t) { http_get($port, '/app', headers => { Authorization => "Bearer $t" }) }

# --- a login -------------------------------------------------------------------------

my $c = challenge($A, 'erin');
is($c->{status}, 200, 'a challenge: 200');
like($c->{json}{nonce} // '', qr{^[A-Za-z0-9+/]{43}=$}, '  with a 32-byte nonce in base64');
is($c->{json}{expires_in}, 300, '  expiring after challenge_ttl (5m)');
my $nonce = $c->{json}{nonce};
my $sig = sign('ed', 'localhost', 'erin', $nonce);
my $v = verify($A, 'erin', $sig);
is($v->{status}, 200, 'the signed nonce logs erin in (Ed25519)');
my $token = $v->{json}{token} // '';
ok(($v->{json}{expires_at} // 0) > time + 3000, '  with a token and its expiry');
my $r = app($B, $token);
is($r->{status}, 200, 'the token passes pairguard_auth_require on the other node');
is($r->{json}{headers}{'x-pairguard-user'}, 'erin', '  as erin');

my $replay = verify($A, 'erin', $sig);
is($replay->{status}, 403, 'the same signature again (replay): 403');
is(verify($B, 'erin', $sig)->{status}, 403, '  on the other node too');

$c = challenge($A, 'frank');
$v = verify($A, 'frank', sign('ec', 'localhost', 'frank', $c->{json}{nonce}));
is($v->{status}, 200, 'ECDSA P-256 (DER) logs frank in');

# --- what does not verify --------------------------------------------------------------

$c = challenge($A, 'erin');
$nonce = $c->{json}{nonce};
is(verify($A, 'erin', sign('ed', 'evil.example', 'erin', $nonce))->{status}, 403, 'signed for another host: 403');
is(verify($A, 'frank', sign('ed', 'localhost', 'frank', $nonce))->{status}, 403, "erin's nonce for frank: 403");
is(verify($A, 'erin', sign('ed2', 'localhost', 'erin', $nonce))->{status}, 403, 'signed by another key: 403');
is(verify($A, 'erin', 'AAAA')->{status}, 403, 'a garbage signature: 403');
is(verify($A, 'erin', sign('ed', 'localhost', 'erin', $nonce))->{status}, 200,
   'the nonce still works for its user after those failures');
is(verify($A, 'erin', '')->{status}, 400, 'no signature: 400');

my $u1 = challenge($A, 'nobody');
is($u1->{status}, 200, 'an unknown user gets a challenge too');
like($u1->{json}{nonce} // '', qr{^[A-Za-z0-9+/]{43}=$}, '  shaped like any other');
my $unknown = verify($A, 'nobody', sign('ed', 'localhost', 'nobody', $u1->{json}{nonce}));
is($unknown->{status}, 403, '  and fails at verify with 403');
is($unknown->{body}, $replay->{body}, '  with the body of any other failure');

# --- expiry (node B: challenge_ttl=2s) ---------------------------------------------------

$c = challenge($B, 'erin');
is($c->{json}{expires_in}, 2, 'node B hands out nonces for 2 s');
$sig = sign('ed', 'localhost', 'erin', $c->{json}{nonce});
sleep 2.2;
is(verify($B, 'erin', $sig)->{status}, 403, 'an expired nonce: 403');

# --- revocation and rotation ----------------------------------------------------------------

$c = challenge($A, 'erin');
$sig = sign('ed', 'localhost', 'erin', $c->{json}{nonce});
my ($rc, undef, $err) = ctl_auth($redis, undef, 'key', 'revoke', 'erin', '--reason', 'lost laptop');
is($rc, 0, 'pairguardctl key revoke erin') or diag($err);
is(verify($A, 'erin', $sig)->{status}, 403, 'a revoked key is refused even with a challenge outstanding');
is(app($A, $token)->{status}, 401, '  and her session ended (401)');

($rc, undef, $err) = ctl_auth($redis, undef, 'key', 'set', 'erin', "$dir/ed2.pub");
is($rc, 0, 'pairguardctl key set erin (a new key)') or diag($err);
$c = challenge($A, 'erin');
is(verify($A, 'erin', sign('ed', 'localhost', 'erin', $c->{json}{nonce}))->{status}, 403, 'the old key no longer works');
$c = challenge($A, 'erin');
$v = verify($A, 'erin', sign('ed2', 'localhost', 'erin', $c->{json}{nonce}));
is($v->{status}, 200, 'the new one does');
$token = $v->{json}{token};
is(app($A, $token)->{status} . ' ' . app($B, $token)->{status}, '200 200', '  its session passes on both nodes');
($rc) = ctl_auth($redis, undef, 'key', 'set', 'erin', "$dir/ed.pub");
is($rc, 0, 'rotating the key again');
my $t0 = time;
my $st = '';
while (time - $t0 < 1) {
    $st = app($A, $token)->{status} . ' ' . app($B, $token)->{status};
    last if $st eq '401 401';
    sleep 0.05;
}
is($st, '401 401', 'ends her sessions on every node within 1 s');

# --- no nonce in Redis --------------------------------------------------------------------

$c = challenge($A, 'frank');
is(secret_seen($c->{json}{nonce}, $redis), '', 'an outstanding nonce is not in Redis');

done();
