# pairguardctl's auth commands (SPEC section 4: user, key, sessions, logout,
# challenge, verify) against a real redis-server. Sessions that a login at
# the edge would make come from build/cmake/pairguard_test_tool (same core,
# same scripts); air-gapped signatures come from the openssl command. No nginx.
#
# Environment: PG_CTL (default build/pairguardctl), PG_TEST_TOOL (default
# the pairguard_test_tool of pairguardctl's build tree), PG_OPENSSL (default
# openssl).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(encode_base64 decode_base64);
use Digest::SHA qw(hmac_sha256 sha256);
use Time::HiRes qw(sleep time);
use PgTest qw(-nonginx);

my $ctl = ctl_path();
my $tool = test_tool_path();
my $openssl = $ENV{PG_OPENSSL} // 'openssl';
plan skip_all => "$ctl or $tool not built (scripts/build.sh)" unless -x $ctl && -x $tool;

my $dir = testdir();
my $json = JSON::PP->new->canonical;

my $redis = start_redis();
my $port = $redis->port;
sub redis (@cmd) { $redis->cmd(@cmd) }
is(redis('PING'), 'PONG', 'redis-server is up');

# Every key and every value in Redis, flattened.
sub store_dump () {
    my @all;
    for my $k (@{ redis('KEYS', '*') }) {
        my $t = redis('TYPE', $k);
        push @all, $k;
        push @all, $t eq 'hash' ? @{ redis('HGETALL', $k) }
                 : $t eq 'string' ? redis('GET', $k)
                 : $t eq 'set' ? @{ redis('SMEMBERS', $k) }
                 : $t eq 'zset' ? @{ redis('ZRANGE', $k, 0, -1, 'WITHSCORES') }
                 : ();
    }
    return @all;
}

# ---- secret, environment, helpers ----

my $secret = join '', map { chr(int(rand(256))) } 1 .. 32;
write_file("$dir/secret", $secret, 0600);

$ENV{PAIRGUARD_REDIS} = "127.0.0.1:$port";
$ENV{PAIRGUARD_SECRET_FILE} = "$dir/secret";
delete $ENV{$_} for qw(PAIRGUARD_PREFIX PAIRGUARD_PAIRING_POLICY PAIRGUARD_REDIS_PASSWORD PAIRGUARD_AUTH_POLICY);

# (exit status, stdout, stderr); standard input from $stdin (a string), or empty.
sub run_in ($stdin, @cmd) { run_cmd(\@cmd, stdin => $stdin) }

sub ctl (@args) { run_in(undef, $ctl, @args) }
sub ctl_in ($stdin, @args) { run_in($stdin, $ctl, @args) }
sub ctl_json (@args) {
    my ($rc, $out, $err) = run_in(undef, $ctl, '--json', @args);
    return ($rc, eval { $json->decode($out) } // { unparsable => $out, stderr => $err });
}
sub ctl_json_in ($stdin, @args) {
    my ($rc, $out, $err) = run_in($stdin, $ctl, '--json', @args);
    return ($rc, eval { $json->decode($out) } // { unparsable => $out, stderr => $err }, $out, $err);
}

# A session as a login at the edge would create it: the token.
sub login_session ($user, $method = 'password') {
    my ($rc, $out) = run_in(undef, $tool, '--redis', "127.0.0.1:$port", "$dir/secret", 'session', $user, $method);
    chomp $out;
    return $rc == 0 ? $out : undef;
}

# What a request with the token finds: "USER METHOD" or undef.
sub session_user ($token) {
    my ($rc, $out) = run_in(undef, $tool, '--redis', "127.0.0.1:$port", "$dir/secret", 'session-get', $token);
    return $out =~ /^found (\S+) (\S+) \d+$/ ? "$1 $2" : undef;
}

# RFC 5802 StoredKey of a password, for a stored SCRAM credential.
sub scram_matches ($stored, $password) {
    my ($iter, $salt, $stored_key, $server_key) = $stored =~ m{^SCRAM-SHA-256\$(\d+):([^\$]+)\$([^:]+):(.+)$}
        or return 0;
    $salt = decode_base64($salt);
    my $u = hmac_sha256($salt . "\0\0\0\1", $password);
    my $salted = $u;
    for (2 .. $iter) {
        $u = hmac_sha256($u, $password);
        $salted ^.= $u;
    }
    return sha256(hmac_sha256('Client Key', $salted)) eq decode_base64($stored_key)
        && hmac_sha256('Server Key', $salted) eq decode_base64($server_key);
}

sub user_record ($user) {
    # the user's hash is the only :user key whose name field is $user
    for my $k (@{ redis('KEYS', 'pairguard:{a:*}:user') }) {
        my %h = @{ redis('HGETALL', $k) };
        return \%h if ($h{name} // '') eq $user;
    }
    return undef;
}

# A subscriber on the events channel.
my $sub = $redis->subscriber('pairguard:events');
sub events () { $sub->messages }

# ---- keys made with openssl ----

sub openssl (@args) {
    system($openssl, @args) == 0 or die "openssl @args failed";
}
openssl('genpkey', '-algorithm', 'ed25519', '-out', "$dir/ed1.key");
openssl('pkey', '-in', "$dir/ed1.key", '-pubout', '-out', "$dir/ed1.pem");
openssl('genpkey', '-algorithm', 'ed25519', '-out', "$dir/ed2.key");
openssl('pkey', '-in', "$dir/ed2.key", '-pubout', '-out', "$dir/ed2.pem");
openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', "$dir/ec.key");
openssl('pkey', '-in', "$dir/ec.key", '-pubout', '-out', "$dir/ec.pem");
openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', "$dir/rsa.key");
openssl('pkey', '-in', "$dir/rsa.key", '-pubout', '-out', "$dir/rsa.pem");

# Signs a challenge file's message as an offline signer would: the raw
# signature bytes in $out.
sub sign_challenge ($challenge_file, $key, $out) {
    my $c = $json->decode(read_file($challenge_file));
    write_file("$dir/message", $c->{message});
    if ($key =~ /ec\.key$/) {
        openssl('dgst', '-sha256', '-sign', $key, '-out', $out, "$dir/message");
    } else {
        openssl('pkeyutl', '-sign', '-inkey', $key, '-rawin', '-in', "$dir/message", '-out', $out);
    }
    return $c;
}

# ---- usage ----

{
    my ($rc, $out) = ctl('help');
    like($out, qr/user add USER .*--password-stdin.*--pubkey FILE\.pem.*--protected/, 'help lists user add');
    like($out, qr/challenge USER --out FILE/, 'and the air-gapped challenge');
    my $err;
    ($rc) = ctl('user');
    is($rc, 2, 'user without a subcommand is a usage error');
    ($rc) = ctl('user', 'frob', 'alice');
    is($rc, 2, 'an unknown user subcommand is a usage error');
    ($rc, undef, $err) = ctl('user', 'add', 'alice');
    is($rc, 2, 'user add without a password or a key is a usage error');
    ($rc) = ctl('user', 'add', "al\x01ice", '--pubkey', "$dir/ed1.pem");
    is($rc, 2, 'a user name with a control character is a usage error');
    ($rc) = ctl('user', 'add', 'x' x 257, '--pubkey', "$dir/ed1.pem");
    is($rc, 2, 'a user name over 256 bytes is a usage error');
    ($rc, undef, $err) = ctl('user', 'add', 'alice', '--pubkey', "$dir/rsa.pem");
    is($rc, 2, 'an RSA key is refused');
    like($err, qr/rsa\.pem/i, 'naming the file');
    ($rc, undef, $err) = ctl('user', 'add', 'alice', '--pubkey', "$dir/ed1.key");
    is($rc, 2, 'a private key file is refused');
    ($rc) = ctl('user', 'add', 'alice', '--pubkey', "$dir/nonexistent.pem");
    is($rc, 2, 'a missing key file is refused');
    ($rc) = ctl('user', 'passwd', 'alice');
    is($rc, 2, 'user passwd without --password-stdin is a usage error');
    ($rc) = ctl('pending', '--password-stdin');
    is($rc, 2, 'an auth option on a pairing command is a usage error');
    ($rc) = ctl('user', 'del', 'alice', '--reason', 'x');
    is($rc, 2, 'an option the command does not take is a usage error');
    ($rc) = ctl('challenge', 'alice');
    is($rc, 2, 'challenge without --out is a usage error');
    ($rc) = ctl('verify', 'alice');
    is($rc, 2, 'verify without --in is a usage error');
    ($rc) = ctl('--auth-policy', 'session_ttl=forever', 'sessions', 'alice');
    is($rc, 2, 'a bad --auth-policy is a usage error');
    ($rc) = ctl('--redis', '127.0.0.1:' . free_port(), 'user', 'list');
    is($rc, 3, 'an unreachable store exits with 3');
    ($rc, undef, $err) = ctl_in("pw\n", '--redis', '127.0.0.1:' . free_port(), 'user', 'add', 'alice', '--password-stdin');
    is($rc, 3, 'user add with an unreachable store exits with 3');
    is_deeply([@{ redis('KEYS', '*') }], [], 'nothing was stored by refused commands');
}

# ---- user add with a password; the password never shows ----

my $pw = 'correct horse battery staple';
{
    my ($rc, $j, $out, $err) = ctl_json_in("$pw\n", 'user', 'add', 'alice', '--password-stdin');
    is($rc, 0, 'user add alice --password-stdin');
    is_deeply($j, { user => 'alice', added => JSON::PP::true, password => JSON::PP::true, key => undef,
                    protected => JSON::PP::false }, 'answers the user in JSON');
    ok(index("$out$err", $pw) < 0, 'the password is not echoed');
    my $u = user_record('alice');
    like($u->{argon2}, qr/^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/, 'an Argon2id hash is stored');
    ok(scram_matches($u->{scram}, $pw), 'and SCRAM-SHA-256 credentials of the password without its newline');
    ok(!grep({ index($_, $pw) >= 0 } store_dump()), 'Redis holds the password nowhere in clear');
    ok(!exists $u->{key}, 'no key');
    like($u->{argon2}, qr/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'with the default Argon2 parameters');

    # --auth-policy's Argon2 parameters are those of the hashes it makes:
    # a user hashed more cheaply than the module's dummy would answer faster
    # than an unknown user
    ($rc) = ctl_in("$pw\n", '--auth-policy', 'argon2_m=32768 argon2_t=3', 'user', 'add', 'strong', '--password-stdin');
    is($rc, 0, 'user add with --auth-policy "argon2_m=32768 argon2_t=3"');
    like(user_record('strong')->{argon2}, qr/^\$argon2id\$v=19\$m=32768,t=3,p=1\$/, '  hashes with those parameters');
    ($rc) = ctl_in("$pw-2\n", '--auth-policy', 'argon2_m=24576 argon2_t=4', 'user', 'passwd', 'strong', '--password-stdin');
    is($rc, 0, 'user passwd with --auth-policy');
    like(user_record('strong')->{argon2}, qr/^\$argon2id\$v=19\$m=24576,t=4,p=1\$/, '  hashes with those too');
    ($rc) = ctl('user', 'del', 'strong');
    is($rc, 0, '  (and the user goes again)');

    ($rc, $j) = ctl_json_in("other\n", 'user', 'add', 'alice', '--password-stdin');
    is($rc, 1, 'adding an existing user is refused');
    is($j->{error}, 'exists', 'as exists');
    ok(scram_matches(user_record('alice')->{scram}, $pw), 'the stored password is unchanged');

    # one trailing newline only
    ($rc, undef, $err) = ctl_in("two lines\n\n", 'user', 'add', 'bob', '--password-stdin');
    is($rc, 2, 'a password with a line break left after stripping one newline is refused');
    ok(index($err, 'two lines') < 0, 'without quoting it');
    ($rc) = ctl_in("", 'user', 'add', 'bob', '--password-stdin');
    is($rc, 2, 'an empty standard input is refused');
    ($rc) = ctl_in("\n", 'user', 'add', 'bob', '--password-stdin');
    is($rc, 2, 'an empty password is refused');
    ($rc) = ctl_in('x' x 1025, 'user', 'add', 'bob', '--password-stdin');
    is($rc, 2, 'a password over 1024 bytes is refused');
    ($rc) = ctl_in("\xff\xfe\n", 'user', 'add', 'bob', '--password-stdin');
    is($rc, 2, 'a password that is not UTF-8 is refused');
    ok(!user_record('bob'), 'no user was made by the refused adds');

    ($rc) = ctl_in("no newline at all", 'user', 'add', 'bob', '--password-stdin');
    is($rc, 0, 'a password without a trailing newline is taken as it is');
    ok(scram_matches(user_record('bob')->{scram}, 'no newline at all'), 'byte for byte');
    ($rc) = ctl_in("crlf pass\r\n", 'user', 'add', 'carol', '--password-stdin');
    is($rc, 0, 'a password ending in CRLF');
    ok(scram_matches(user_record('carol')->{scram}, 'crlf pass'), 'loses its CRLF');
    my $caf = "caf\xc3\xa9 \xe2\x98\x95";
    ($rc) = ctl_in("$caf\n", 'user', 'add', 'dave', '--password-stdin');
    ok($rc == 0 && scram_matches(user_record('dave')->{scram}, $caf), 'a UTF-8 password is stored as its bytes');
}

# ---- from a terminal: prompted twice, never echoed ----

SKIP: {
    skip 'python3 (for a pseudo-terminal) not found', 5 unless `python3 -c 'import pty; print(1)' 2>/dev/null` eq "1\n";
    # runs pairguardctl on a pty, types two lines, prints what the terminal showed and the exit status
    write_file("$dir/on_terminal.py", <<'PY');
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:2] + ['user', 'add', sys.argv[2], '--password-stdin'])
out = b''
def drain(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                d = os.read(fd, 1024)
            except OSError:
                return
            if not d:
                return
            out += d
for line in sys.argv[3:5]:
    drain(0.3)
    os.write(fd, (line + '\n').encode())
drain(3)
_, st = os.waitpid(pid, 0)
sys.stdout.buffer.write(out + b'\nEXIT=%d\n' % os.WEXITSTATUS(st))
PY
    my $typed = 'typed at a terminal';
    my ($rc, $out) = run_in(undef, 'python3', "$dir/on_terminal.py", $ctl, 'tty', $typed, $typed);
    like($out, qr/Password: .*Password \(again\): /s, 'a terminal gets a prompt and a confirmation prompt');
    like($out, qr/EXIT=0$/, 'the user is added');
    ok(index($out, $typed) < 0, 'the typed password is not echoed');
    ok(scram_matches(user_record('tty')->{scram}, $typed), 'the typed line is the password');
    ($rc, $out) = run_in(undef, 'python3', "$dir/on_terminal.py", $ctl, 'tty2', $typed, 'something else');
    like($out, qr/do not match.*EXIT=2$/s, 'two different passwords are refused');
}

# ---- listing and showing users ----

{
    my ($rc, $j) = ctl_json('user', 'list');
    is_deeply([$rc, [grep { $_ ne 'tty' } @{ $j->{users} }]], [0, [qw(alice bob carol dave)]], 'user list');
    ($rc, $j) = ctl_json('user', 'show', 'alice');
    is($rc, 0, 'user show');
    is($j->{password}, JSON::PP::true, 'shows that alice has a password');
    is($j->{haystack}, JSON::PP::true, 'and Haystack credentials');
    ok(!grep({ /argon2|scram|\$/ } map { $json->encode($_) } values %$j), 'but no hash');
    ($rc, $j) = ctl_json('user', 'show', 'nobody');
    is_deeply([$rc, $j], [1, { error => 'not_found' }], 'an unknown user is not found');
}

# ---- user passwd ----

{
    my $t1 = login_session('alice');
    my $t2 = login_session('alice', 'haystack');
    ok($t1 && $t2, 'alice has two sessions');
    is(session_user($t1), 'alice password', 'which work');
    my $old = user_record('alice');
    events();
    my ($rc, $out, $err) = ctl_in("new password\n", 'user', 'passwd', 'alice', '--password-stdin');
    is($rc, 0, 'user passwd');
    ok(index("$out$err", 'new password') < 0, 'does not echo the password');
    my $new = user_record('alice');
    isnt($new->{argon2}, $old->{argon2}, 'a new Argon2id hash is stored');
    ok(scram_matches($new->{scram}, 'new password'), 'and new SCRAM credentials');
    ok(!defined session_user($t1) && !defined session_user($t2), 'the old sessions are ended');
    my @ev = events();
    ok(grep({ /^revoked_user\|/ } @ev), 'nodes are told (revoked_user event)') or diag explain \@ev;
    ok(!grep({ index($_, 'new password') >= 0 } store_dump()), 'the new password is nowhere in Redis');
    ($rc) = ctl_in("x\n", 'user', 'passwd', 'nobody', '--password-stdin');
    is($rc, 1, 'user passwd of an unknown user is refused');
    ok(!user_record('nobody'), 'and makes no user');
}

# ---- keys: add with a key, rotation, revocation ----

my %fp;
for my $k (qw(ed1 ed2 ec)) {
    my $der = `$openssl pkey -pubin -in $dir/$k.pem -outform DER`;
    ($fp{$k} = 'SHA256:' . encode_base64(sha256($der), '')) =~ s/=+$//;
}

{
    my ($rc, $j) = ctl_json('user', 'add', 'erin', '--pubkey', "$dir/ed1.pem");
    is($rc, 0, 'user add erin --pubkey (a key-only user)');
    is_deeply($j->{key}, { type => 'ed25519', fingerprint => $fp{ed1} }, 'with its type and SHA256 fingerprint');
    my $u = user_record('erin');
    ok(!exists $u->{argon2} || $u->{argon2} eq '', 'no password hash for a key-only user');
    like($u->{key}, qr/^-----BEGIN PUBLIC KEY-----\n/, 'the key is stored as PEM');

    ($rc, $j) = ctl_json_in("pw\n", 'user', 'add', 'frank', '--password-stdin', '--pubkey', "$dir/ec.pem");
    is($rc, 0, 'user add with a password and an ECDSA P-256 key');
    is($j->{key}{type}, 'ecdsa-p256', 'the key type is shown');

    my $t1 = login_session('erin');
    my $t2 = login_session('erin');
    events();
    my ($rc2, $out) = ctl('key', 'set', 'erin', "$dir/ed2.pem");
    is($rc2, 0, 'key set rotates the key');
    like($out, qr/\Q$fp{ed2}\E/, 'naming the new fingerprint');
    is(user_record('erin')->{key_fp}, $fp{ed2}, 'the new key is stored');
    ok(!defined session_user($t1) && !defined session_user($t2), 'rotation ends the sessions of the user');
    ok(grep({ /^revoked_user\|/ } events()), 'and tells the nodes');

    ($rc) = ctl('key', 'set', 'nobody', "$dir/ed2.pem");
    is($rc, 1, 'key set for an unknown user is refused');
    ($rc) = ctl('key', 'set', 'erin', "$dir/rsa.pem");
    is($rc, 2, 'key set with an RSA key is a usage error');
    ($rc) = ctl('key', 'set', 'erin');
    is($rc, 2, 'key set without a file is a usage error');
}

# ---- protected users ----

{
    my ($rc, $j) = ctl_json('user', 'add', 'server', '--pubkey', "$dir/ed1.pem", '--protected');
    is($rc, 0, 'user add --protected');
    is($j->{protected}, JSON::PP::true, 'says so');
    ($rc, $j) = ctl_json('user', 'del', 'server');
    is_deeply([$rc, $j], [1, { error => 'protected_user' }], 'user del refuses a protected user');
    ok(user_record('server'), 'which is still there');
    ($rc, my $out, my $err) = ctl('user', 'del', 'server');
    like($err, qr/protected/, 'the human form says why');
    ($rc) = ctl('user', 'unprotect', 'server');
    is($rc, 0, 'user unprotect');
    ($rc) = ctl('user', 'del', 'server');
    is($rc, 0, 'then user del works');
}

# ---- user del ----

{
    my $t = login_session('bob');
    events();
    my ($rc, $j) = ctl_json('user', 'del', 'bob');
    is_deeply([$rc, $j], [0, { user => 'bob', deleted => JSON::PP::true }], 'user del');
    ok(!user_record('bob'), 'the user is gone');
    ok(!defined session_user($t), 'with its sessions');
    ok(grep({ /^revoked_user\|/ } events()), 'and the nodes are told');
    ($rc, $j) = ctl_json('user', 'list');
    ok(!grep({ $_ eq 'bob' } @{ $j->{users} }), 'bob is no longer listed');
    ($rc, $j) = ctl_json('user', 'del', 'bob');
    is_deeply([$rc, $j], [1, { error => 'not_found' }], 'deleting again: not found');
}

# ---- sessions and logout ----

{
    my @t = map { login_session('carol', $_) } qw(password haystack challenge);
    my ($rc, $j) = ctl_json('sessions', 'carol');
    is($rc, 0, 'sessions lists');
    is(scalar @{ $j->{sessions} }, 3, 'three sessions');
    my ($s) = @{ $j->{sessions} };
    is_deeply([sort keys %$s], [qw(created_at expires_at id method)], 'each with id, method, created and expiry');
    like($s->{id}, qr/^[0-9a-f]{8}$/, 'the id is 8 hex digits of the token hash');
    ok($s->{expires_at} > time + 3500 && $s->{created_at} <= time + 1, 'times are unix seconds');
    is_deeply([sort map { $_->{method} } @{ $j->{sessions} }], [qw(challenge haystack password)], 'methods');
    my ($rc2, $out) = ctl('sessions', 'carol');
    like($out, qr/^ID\s+METHOD\s+CREATED\s+EXPIRES\n/, 'the human listing is a table');
    for my $tok (@t) {
        my ($r) = $tok =~ /\.(.*)$/;
        ok(index($out, $r) < 0 && index($json->encode($j), $r) < 0, 'no token is printed');
    }
    ($rc, $j) = ctl_json('sessions', 'nobody');
    is($rc, 1, 'sessions of an unknown user: not found');

    events();
    ($rc, $j) = ctl_json('logout', 'carol');
    is_deeply([$rc, $j], [0, { user => 'carol', revoked => 3 }], 'logout ends the three sessions');
    ok(!grep({ defined session_user($_) } @t), 'none works any more');
    ok(grep({ /^revoked_user\|/ } events()), 'the nodes are told');
    ($rc, $j) = ctl_json('sessions', 'carol');
    is_deeply($j->{sessions}, [], 'none is listed');
    ($rc, $j) = ctl_json('logout', 'carol');
    is_deeply([$rc, $j], [0, { user => 'carol', revoked => 0 }], 'a second logout ends nothing');
    ($rc) = ctl('logout', 'nobody');
    is($rc, 1, 'logout of an unknown user: not found');
}

# ---- air-gapped challenge and verify ----

{
    # erin's key is ed2 now
    my ($rc, $j) = ctl_json('challenge', 'erin', '--out', "$dir/ch1.json");
    is($rc, 0, 'challenge writes a file');
    my $c = $json->decode(read_file("$dir/ch1.json"));
    is($c->{user}, 'erin', 'for the user');
    is($c->{host}, 'pairguardctl', 'the default host');
    like($c->{nonce}, qr{^[A-Za-z0-9+/]{43}=$}, 'a 32-byte base64 nonce');
    is($c->{message}, "pairguard-auth-v1\npairguardctl\nerin\n$c->{nonce}", 'and the exact message to sign');
    ok($c->{expires_at} > time + 250 && $c->{expires_at} <= time + 301, 'expiring in challenge_ttl (5m)');
    is($j->{nonce}, $c->{nonce}, 'the JSON answer names the nonce');
    ok(!grep({ index($_, $c->{nonce}) >= 0 } store_dump()), 'Redis does not hold the nonce');

    sign_challenge("$dir/ch1.json", "$dir/ed2.key", "$dir/sig1.bin");
    my ($out, $err);
    ($rc, $out, $err) = ctl('verify', 'erin', '--in', "$dir/sig1.bin");
    is($rc, 0, 'verify takes the raw signature openssl wrote');
    chomp $out;
    like($out, qr/^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/, 'and prints a session token');
    is(session_user($out), 'erin challenge', 'which is a live session of the user');
    ($rc, $j) = ctl_json('verify', 'erin', '--in', "$dir/sig1.bin");
    is_deeply([$rc, $j], [1, { error => 'invalid_signature' }], 'a challenge works once');

    # base64 and JSON responses, --out -, --host
    ($rc, $out) = ctl('challenge', 'erin', '--out', '-', '--host', 'edge.example.com');
    is($rc, 0, 'challenge --out - writes to standard output');
    write_file("$dir/ch2.json", $out);
    $c = sign_challenge("$dir/ch2.json", "$dir/ed2.key", "$dir/sig2.bin");
    is($c->{host}, 'edge.example.com', 'for the --host given');
    write_file("$dir/sig2.b64", encode_base64(read_file("$dir/sig2.bin"), '') . "\n");
    ($rc) = ctl('verify', 'erin', '--in', "$dir/sig2.b64");
    is($rc, 1, 'verify for the default host refuses a signature made for another host');
    ($rc, $j) = ctl_json('verify', 'erin', '--in', "$dir/sig2.b64", '--host', 'edge.example.com');
    is($rc, 0, 'verify --host takes a base64 signature');
    ok($j->{token} && $j->{expires_at} > time + 86000, '--json answers {token, expires_at} (session_ttl 24h)');

    ($rc) = ctl('challenge', 'erin', '--out', "$dir/ch3.json");
    $c = sign_challenge("$dir/ch3.json", "$dir/ed2.key", "$dir/sig3.bin");
    $c->{signature} = encode_base64(read_file("$dir/sig3.bin"), '');
    write_file("$dir/resp3.json", $json->encode($c));
    ($rc, $out) = ctl_in($json->encode($c), 'verify', 'erin', '--in', '-');
    is($rc, 0, 'verify --in - reads the challenge file with a signature added, from standard input');
    ($rc) = ctl_in($json->encode($c), 'verify', 'frank', '--in', '-');
    is($rc, 2, 'a JSON response naming another user is a usage error');

    # wrong key: refused, and counted
    ($rc) = ctl('challenge', 'erin', '--out', "$dir/ch4.json");
    sign_challenge("$dir/ch4.json", "$dir/ed1.key", "$dir/sig4.bin");
    ($rc, $j) = ctl_json('verify', 'erin', '--in', "$dir/sig4.bin");
    is_deeply([$rc, $j], [1, { error => 'invalid_signature' }], 'a signature by the old key is refused');
    ($rc, $j) = ctl_json('user', 'show', 'erin');
    is($j->{failures}, 1, 'and counts as a failed login');

    # ECDSA P-256 (DER signature over SHA-256)
    ($rc) = ctl('challenge', 'frank', '--out', "$dir/ch5.json");
    sign_challenge("$dir/ch5.json", "$dir/ec.key", "$dir/sig5.der");
    ($rc, $out) = ctl('verify', 'frank', '--in', "$dir/sig5.der");
    is($rc, 0, 'an ECDSA P-256 user verifies with a DER signature');
    chomp $out;
    is(session_user($out), 'frank challenge', 'and gets a session');

    # refusals
    ($rc, $j) = ctl_json('challenge', 'alice', '--out', "$dir/x.json");
    is_deeply([$rc, $j], [1, { error => 'no_key' }], 'no challenge for a user without a key');
    ($rc, $j) = ctl_json('challenge', 'nobody', '--out', "$dir/x.json");
    is_deeply([$rc, $j], [1, { error => 'not_found' }], 'nor for an unknown user');
    ok(!-e "$dir/x.json", 'and no file is written');
    ($rc) = ctl('verify', 'erin', '--in', "$dir/nonexistent");
    is($rc, 2, 'verify with a missing file is a usage error');
    write_file("$dir/garbage", "\n");
    ($rc) = ctl('verify', 'erin', '--in', "$dir/garbage");
    is($rc, 2, 'an empty response is a usage error');

    # a challenge does not survive a rotation
    ($rc) = ctl('challenge', 'erin', '--out', "$dir/ch6.json");
    sign_challenge("$dir/ch6.json", "$dir/ed2.key", "$dir/sig6.bin");
    ctl('key', 'set', 'erin', "$dir/ed2.pem");
    ($rc) = ctl('verify', 'erin', '--in', "$dir/sig6.bin");
    is($rc, 1, 'key set drops pending challenges');
}

# ---- lockout: failed signatures count toward the user's lock ----

{
    my @p = ('--auth-policy', 'max_failures=2 lockout=1m');
    ctl('user', 'add', 'gina', '--pubkey', "$dir/ed1.pem");
    for my $i (1 .. 2) {
        ctl(@p, 'challenge', 'gina', '--out', "$dir/l$i.json");
        sign_challenge("$dir/l$i.json", "$dir/ed2.key", "$dir/l$i.sig");
        my ($rc) = ctl(@p, 'verify', 'gina', '--in', "$dir/l$i.sig");
        is($rc, 1, "wrong signature $i is refused");
    }
    ctl(@p, 'challenge', 'gina', '--out', "$dir/l3.json");
    sign_challenge("$dir/l3.json", "$dir/ed1.key", "$dir/l3.sig");
    my ($rc, $j) = ctl_json(@p, 'verify', 'gina', '--in', "$dir/l3.sig");
    is($rc, 1, 'at max_failures even the right signature is refused');
    is($j->{error}, 'locked', 'as locked');
    cmp_ok($j->{retry_after}, '>', 50, 'for about the lockout');
}

# ---- key revoke ----

{
    my $t = login_session('frank');
    ctl('challenge', 'frank', '--out', "$dir/r.json");
    sign_challenge("$dir/r.json", "$dir/ec.key", "$dir/r.sig");
    events();
    my ($rc, $j) = ctl_json('key', 'revoke', 'frank', '--reason', 'laptop lost');
    is_deeply([$rc, $j], [0, { user => 'frank', revoked => JSON::PP::true, reason => 'laptop lost' }],
              'key revoke --reason');
    ok(!defined session_user($t), 'ends the sessions');
    ok(grep({ /^revoked_user\|/ } events()), 'and tells the nodes');
    ($rc, $j) = ctl_json('user', 'show', 'frank');
    is($j->{revoked}{reason}, 'laptop lost', 'user show gives the reason');
    ($rc, $j) = ctl_json('verify', 'frank', '--in', "$dir/r.sig");
    is_deeply([$rc, $j], [1, { error => 'revoked' }], 'a challenge signed before the revocation no longer verifies');
    ($rc, $j) = ctl_json('challenge', 'frank', '--out', "$dir/r2.json");
    is_deeply([$rc, $j], [1, { error => 'revoked' }], 'and no new challenge is issued');
    is(login_session('frank'), undef, 'no login method creates a session for a revoked user');
    ($rc, $j) = ctl_json('key', 'revoke', 'alice');
    is_deeply([$rc, $j], [1, { error => 'no_key' }], 'revoking the key of a user without one is refused');
    ($rc) = ctl('key', 'revoke', 'nobody');
    is($rc, 1, 'revoking for an unknown user is refused');

    ($rc) = ctl('key', 'set', 'frank', "$dir/ec.pem");
    is($rc, 0, 'key set after a revocation');
    ($rc, $j) = ctl_json('user', 'show', 'frank');
    is($j->{revoked}, undef, 'clears it');
    ctl('challenge', 'frank', '--out', "$dir/r3.json");
    sign_challenge("$dir/r3.json", "$dir/ec.key", "$dir/r3.sig");
    ($rc) = ctl('verify', 'frank', '--in', "$dir/r3.sig");
    is($rc, 0, 'and the user can log in again');
}

# ---- nothing secret in Redis, all of it under per-user hash tags ----

{
    my @dump = store_dump();
    ok(!grep({ index($_, $pw) >= 0 || index($_, 'new password') >= 0 } @dump), 'no password in Redis');
    my @keys = @{ redis('KEYS', '*') };
    ok(!grep({ /erin|frank|alice/ } @keys), 'key names hold no user name');
    ok(!grep({ !/^pairguard:(\{a:[A-Za-z0-9_-]{16}\}:|auth:users$|\{events\}-stream$)/ } @keys),
       'every key is per user or the user list (or the event stream)')
        or diag explain \@keys;
}

done();
