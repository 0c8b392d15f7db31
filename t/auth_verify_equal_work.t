# `verify` answers every caller alike (SPEC section 4, issue 8 item 6): a
# known user with a bad signature, an unknown user, a user without a key and
# a revoked user get byte for byte the same answer, and the same failure is
# counted for each. (That the work is the same too, a dummy key verified
# like a real one, is checked structurally by the core's unit test
# LoginVerify.UnknownUsersVerifyWithADummyKeyLikeKnownOnes: timing is not a
# test.)
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(encode_base64);
use PgTest;
use PgAuth;

my $redis = start_redis();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy max_failures=50;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /auth/challenge { pairguard_auth challenge; }
        location = /auth/verify    { pairguard_auth verify; }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis);
my $P  = $ng->port;

my $dir = testdir();
sub openssl (@args) { system('openssl', @args) == 0 or die "openssl @args failed\n" }
for (['ed', '-algorithm', 'ed25519'], ['ec', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
     ['other', '-algorithm', 'ed25519'], ['otherec', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']) {
    my ($name, @alg) = @$_;
    openssl('genpkey', @alg, '-out', "$dir/$name.key");
    openssl('pkey', '-in', "$dir/$name.key", '-pubout', '-out', "$dir/$name.pub");
}
sub sign ($name, $user, $nonce) {
    write_file("$dir/msg", "pairguard-auth-v1\nlocalhost\n$user\n$nonce");
    if ($name =~ /ec$/) {
        openssl('dgst', '-sha256', '-sign', "$dir/$name.key", '-out', "$dir/sig", "$dir/msg");
    } else {
        openssl('pkeyutl', '-sign', '-inkey', "$dir/$name.key", '-rawin', '-in', "$dir/msg", '-out', "$dir/sig");
    }
    return encode_base64(read_file("$dir/sig"), '');
}

ctl_auth($redis, undef, qw(user add erin --pubkey), "$dir/ed.pub");
ctl_auth($redis, undef, qw(user add frank --pubkey), "$dir/ec.pub");
ctl_auth($redis, "kim pass\n", qw(user add kim --password-stdin));
ctl_auth($redis, undef, qw(user add rita --pubkey), "$dir/ed.pub");
my ($rc) = ctl_auth($redis, undef, qw(key revoke rita --reason test));
is($rc, 0, 'erin (Ed25519), frank (ECDSA), kim (no key) and rita (revoked) exist; ghost does not');

# the whole answer, but for its Date
sub verify_raw ($user, $signer) {
    my $c = http_post_json($P, '/auth/challenge', { user => $user });
    my $r = http_post_json($P, '/auth/verify', { user => $user, signature => sign($signer, $user, $c->{json}{nonce}) });
    return $r->{raw} =~ s/^Date: [^\r\n]*\r\n//mr;
}

for my $signer (qw(other otherec)) {
    my $kind = $signer eq 'other' ? 'an Ed25519' : 'an ECDSA';
    my $erin = verify_raw('erin', $signer);
    like($erin, qr{^HTTP/1.1 403 .*\{"error":"invalid_credentials"\}$}s, "erin with $kind signature by another key: 403");
    is(verify_raw('frank', $signer), $erin, "  frank (ECDSA key) gets the same bytes");
    is(verify_raw('ghost', $signer), $erin, "  ghost (unknown) gets the same bytes");
    is(verify_raw('kim', $signer), $erin, "  kim (no key) gets the same bytes");
    is(verify_raw('rita', $signer), $erin, "  rita (revoked) gets the same bytes");
}

my @fails = map { $redis->cmd('GET', user_base($_) . ':fail') // 0 } qw(erin frank ghost kim rita);
is("@fails", '2 2 2 2 2', 'each of them has the same failures counted');

is(verify_raw('erin', 'ed') =~ m{^HTTP/1.1 200}s ? 1 : 0, 1, "erin's own signature still logs her in");

done();
