# The Project Haystack authentication exchange at the edge (SPEC section 4,
# seed 004): HELLO, two SCRAM-SHA-256 round trips, then a bearer token that
# `pairguard_auth haystack` (which proxies) and `pairguard_auth_require`
# both accept. The client here is a small SCRAM client in Perl (Digest::SHA,
# PBKDF2 by hand). Unknown users get answers of the same shape and fail with
# the same 403; wrong passwords, replayed or altered messages fail; base64
# with or without padding is accepted.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Digest::SHA qw(hmac_sha256 sha256);
use MIME::Base64 qw(encode_base64 decode_base64 encode_base64url);
use PgTest;
use PgAuth qw(ctl_auth user_base secret_seen);

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy max_failures=50;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /api/about {
            pairguard_auth haystack;
            proxy_set_header X-Pairguard-User $pairguard_user;
            proxy_pass http://backend/echo;
        }
        location = /app {
            pairguard_auth_require;
            proxy_set_header X-Pairguard-User $pairguard_user;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
my $na = start_nginx($conf, redis => $redis, upstream => $up);
my $nb = start_nginx($conf, redis => $redis, upstream => $up);
my ($A, $B) = ($na->port, $nb->port);

my $PW = 'h@ystack pass';
my ($rc, undef, $err) = ctl_auth($redis, "$PW\n", qw(user add grace --password-stdin));
is($rc, 0, 'pairguardctl adds grace (password, so SCRAM credentials too)') or diag($err);

# --- a SCRAM client ---------------------------------------------------------------

sub b64url ($s, $pad = 0) {
    my $e = encode_base64url($s);
    $e .= '=' x ((4 - length($e) % 4) % 4) if $pad;
    return $e;
}
sub unb64 ($s) {
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}
sub pbkdf2 ($pw, $salt, $iter) {
    my $u = hmac_sha256($salt . "\0\0\0\1", $pw);
    my $out = $u;
    for (2 .. $iter) {
        $u = hmac_sha256($u, $pw);
        $out ^.= $u;
    }
    return $out;
}
# auth-param list of a header (after the scheme, if any)
sub params ($h) {
    $h =~ s/^\s*(?:SCRAM|HELLO)\s+//i;
    my %p;
    for (split /\s*,\s*/, $h) {
        my ($k, $v) = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/ or next;
        $p{lc $k} = $v;
    }
    return \%p;
}
sub about ($port, $auth) {
    return http_get($port, '/api/about', defined $auth ? (headers => { Authorization => $auth }) : ());
}

# The whole exchange; %o: pad => 1 (padded base64), wrong_pw, nonce_tamper,
# stop_after => 'first' (returns the state before client-final).
sub login ($port, $user, $pw, %o) {
    my %s;
    my $r = about($port, 'HELLO username=' . b64url($user, $o{pad}));
    $s{hello} = $r;
    return \%s unless $r->{status} == 401;
    my $p = params($r->{headers}{'www-authenticate'} // '');
    $s{t1} = $p->{handshaketoken};
    my $cnonce = b64url(join('', map { chr int rand 256 } 1 .. 18));
    my $bare = "n=$user,r=$cnonce";
    $r = about($port, "SCRAM handshakeToken=$s{t1}, data=" . b64url("n,,$bare", $o{pad}));
    $s{first} = $r;
    return \%s unless $r->{status} == 401;
    $p = params($r->{headers}{'www-authenticate'} // '');
    $s{t2} = $p->{handshaketoken};
    my $sf = unb64($p->{data} // '');
    $s{server_first} = $sf;
    my %f = map { /^(\w)=(.*)$/ ? ($1, $2) : () } split /,/, $sf;
    my $nonce = $f{r} // '';
    $nonce .= 'x' if $o{nonce_tamper};
    my $sp = pbkdf2($o{wrong_pw} // $pw, decode_base64($f{s} // ''), $f{i} // 4096);
    my $ck = hmac_sha256('Client Key', $sp);
    my $without = 'c=' . encode_base64('n,,', '') . ",r=$nonce";
    my $am = "$bare,$sf,$without";
    my $proof = $ck ^. hmac_sha256($am, sha256($ck));
    $s{final_msg} = "$without,p=" . encode_base64($proof, '');
    $s{expect_v} = encode_base64(hmac_sha256($am, hmac_sha256('Server Key', $sp)), '');
    $r = about($port, "SCRAM handshakeToken=$s{t2}, data=" . b64url($s{final_msg}, $o{pad}));
    $s{final} = $r;
    my $ai = params($r->{headers}{'authentication-info'} // '');
    $s{token} = $ai->{authtoken};
    $s{server_final} = unb64($ai->{data} // '');
    return \%s;
}

# --- the exchange ----------------------------------------------------------------------

my $s = login($A, 'grace', $PW);
is($s->{hello}{status}, 401, 'HELLO: 401');
like($s->{hello}{headers}{'www-authenticate'} // '', qr/^SCRAM .*hash=SHA-256/i, '  asking for SCRAM with SHA-256');
ok($s->{t1}, '  with a handshake token');
is($s->{first}{status}, 401, 'client-first: 401');
like($s->{server_first} // '', qr/^r=[^,]+,s=[A-Za-z0-9+\/]+=*,i=10000$/, '  with server-first (salt, 10000 iterations)');
is($s->{t2}, $s->{t1}, '  naming the HELLO handshake token again (the token of the exchange)');
is($s->{final}{status}, 200, 'client-final with the right proof: 200');
ok($s->{token}, '  Authentication-Info carries an authToken');
is($s->{server_final}, "v=$s->{expect_v}", '  and the server signature the client expects');
my $token = $s->{token};

my $r = about($A, "BEARER authToken=$token");
is($r->{status}, 200, 'the haystack location forwards a request with the bearer token');
is($r->{json}{headers}{'x-pairguard-user'}, 'grace', '  with $pairguard_user = grace');
$r = http_get($B, '/app', headers => { Authorization => "BEARER authToken=$token" });
is($r->{status}, 200, 'pairguard_auth_require on the other node accepts it');
is($r->{json}{headers}{'x-pairguard-user'}, 'grace', '  as grace');
is(about($B, "Bearer $token")->{status}, 200, 'the plain Bearer form works on the haystack location');
is(about($A, 'BEARER authToken=' . substr($token, 0, 17) . ('B' x 43))->{status}, 401, 'a forged authToken: 401');
is(about($A, undef)->{status}, 401, 'no Authorization at all: 401');

$s = login($B, 'grace', $PW, pad => 1);
is($s->{final}{status}, 200, 'the same exchange with padded base64 works (node B)');

# --- failures ----------------------------------------------------------------------------

my $bad = login($A, 'grace', $PW, wrong_pw => 'nope');
is($bad->{hello}{status} . ' ' . $bad->{first}{status}, '401 401', 'a wrong password runs to client-final');
is($bad->{final}{status}, 403, '  and fails there with 403');
is($bad->{final}{body}, '', '  a bare 403, without a body (docHaystack/Auth)');

my $ghost = login($A, 'ghost', 'whatever');
is($ghost->{hello}{status}, 401, 'an unknown user: HELLO 401');
is($ghost->{first}{status}, 401, '  client-first 401');
like($ghost->{server_first} // '', qr/^r=[^,]+,s=[A-Za-z0-9+\/]+=*,i=10000$/, '  with a salt and the usual count');
is($ghost->{final}{status}, 403, '  and 403 at the proof');
is($ghost->{final}{body}, $bad->{final}{body}, '  exactly like a wrong password');
my $ghost2 = login($B, 'ghost', 'whatever');
my ($salt1) = ($ghost->{server_first} // '') =~ /s=([^,]+)/;
my ($salt2) = ($ghost2->{server_first} // '') =~ /s=([^,]+)/;
is($salt1, $salt2, "  the unknown user's salt is the same on every attempt and node");

my $ok = login($A, 'grace', $PW);
is($ok->{final}{status}, 200, 'another good login');
$r = about($A, "SCRAM handshakeToken=$ok->{t2}, data=" . b64url($ok->{final_msg}));
is($r->{status}, 403, 'replaying its client-final: 403');
$r = about($A, "SCRAM handshakeToken=$ok->{t1}, data=" . b64url("n,,n=grace,r=abc"));
is($r->{status}, 403, 'reusing the HELLO handshake token: 403');

my $tamper = login($A, 'grace', $PW, nonce_tamper => 1);
is($tamper->{final}{status}, 403, 'a client-final with another nonce: 403');

$r = about($A, 'HELLO username=' . b64url('grace'));
my $t1 = params($r->{headers}{'www-authenticate'} // '')->{handshaketoken};
$r = about($A, "SCRAM handshakeToken=$t1, data=" . b64url('n,,n=mallory,r=abc'));
is($r->{status}, 403, "a client-first naming another user than HELLO did: 403");
is(about($A, 'SCRAM handshakeToken=garbage, data=' . b64url('n,,n=grace,r=abc'))->{status}, 403,
   'an unknown handshake token: 403');
is(about($A, 'HELLO username=')->{status}, 400, 'HELLO without a user name: 400');

# --- revocation ---------------------------------------------------------------------------

($rc) = ctl_auth($redis, undef, 'logout', 'grace');
is($rc, 0, 'pairguardctl logout grace');
my $t0 = time;
my $st = '';
while (time - $t0 < 1) {
    $st = about($A, "BEARER authToken=$token")->{status} . ' ' . about($B, "BEARER authToken=$token")->{status};
    last if $st eq '401 401';
    sleep 0.05;
}
is($st, '401 401', 'her Haystack token is refused on both nodes within 1 s');

# --- PLAINTEXT: only over TLS unless plaintext=on -------------------------------------------

my $plain = 'PLAINTEXT username=' . b64url('grace') . ', password=' . b64url($PW);
is(about($A, $plain)->{status}, 403, 'PLAINTEXT over plain HTTP with plaintext=tls_only (the default): 403');
my $on_conf = $conf =~ s/max_failures=50;/max_failures=50 plaintext=on;/r;
my $nc = start_nginx($on_conf, redis => $redis, upstream => $up);
$r = about($nc->port, $plain);
is($r->{status}, 200, 'with plaintext=on the right password: 200');
my $pt = params($r->{headers}{'authentication-info'} // '')->{authtoken} // '';
ok($pt, '  with an authToken');
is(about($A, "BEARER authToken=$pt")->{status}, 200, '  which works on the other nodes');
is(about($nc->port, 'PLAINTEXT username=' . b64url('grace') . ', password=' . b64url('wrong'))->{status}, 403,
   '  a wrong password: 403');

# --- lockout: a locked user fails at the proof like a wrong password -------------------------

my $lock_conf = $conf =~ s/max_failures=50;/max_failures=2 lockout=30s;/r;
# (this node's low limit also locks the test's address: keep it last)
my $nd = start_nginx($lock_conf, redis => $redis, upstream => $up);
($rc) = ctl_auth($redis, "pw-heidi\n", qw(user add heidi --password-stdin));
my @st = map { login($nd->port, 'heidi', 'pw-heidi', wrong_pw => "bad$_")->{final}{status} } 1 .. 2;
is("@st", '403 403', 'two wrong proofs (max_failures=2)');
my $locked = login($nd->port, 'heidi', 'pw-heidi');
is($locked->{hello}{status} . ' ' . $locked->{first}{status}, '401 401', 'the locked user still gets HELLO and server-first');
is($locked->{final}{status}, 403, '  and the right password fails at the proof with 403');
is($locked->{final}{body}, $bad->{final}{body}, '  exactly like a wrong one');

is(secret_seen($PW, $redis, $na, $nb, $nc, $nd), '', 'the password is in neither Redis nor any log');
is(secret_seen($ok->{token}, $redis), '', 'no authToken in Redis');
is(secret_seen($ok->{t2}, $redis), '', 'no handshake token in Redis');

done();
