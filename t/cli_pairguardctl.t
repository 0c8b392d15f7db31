# pairguardctl against a real redis-server and real store state, made by
# build/cmake/pairguard_test_tool the way the module makes it (same core,
# same scripts): pairing codes through pair_request, guard locks through
# guard_reserve and guard_settle. No nginx.
#
# Environment: PG_CTL (default build/pairguardctl), PG_TEST_TOOL (default
# the pairguard_test_tool of pairguardctl's build tree).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256);
use Time::HiRes qw(sleep time);
use PgTest qw(-nonginx);

my $ctl = ctl_path();
my $tool = test_tool_path();
plan skip_all => "$ctl or $tool not built (scripts/build.sh)" unless -x $ctl && -x $tool;

my $dir = testdir();
my $json = JSON::PP->new->canonical;

my $redis = start_redis();
my $port = $redis->port;
sub redis (@cmd) { $redis->cmd(@cmd) }
is(redis('PING'), 'PONG', 'redis-server is up');

# ---- secret, environment, helpers ----

my $secret = join '', map { chr(int(rand(256))) } 1 .. 32;
$secret .= "\n";    # taken byte for byte: the newline is part of the secret
write_file("$dir/secret", $secret, 0600);

$ENV{PAIRGUARD_REDIS} = "127.0.0.1:$port";
$ENV{PAIRGUARD_SECRET_FILE} = "$dir/secret";
delete $ENV{$_} for qw(PAIRGUARD_PREFIX PAIRGUARD_PAIRING_POLICY PAIRGUARD_REDIS_PASSWORD);

# (exit status, stdout, stderr)
sub run (@cmd) { run_cmd(\@cmd) }

sub ctl (@args) { run($ctl, @args) }
sub ctl_json (@args) {
    my ($rc, $out) = run($ctl, '--json', @args);
    return ($rc, eval { $json->decode($out) } // { unparsable => $out });
}

# Issues a code as the module's request endpoint would: (status, answer).
sub request ($platform, $user, $name = undef, %o) {
    my @cmd = ($tool, '--redis', "127.0.0.1:$port");
    push @cmd, '--policy', $o{policy} if $o{policy};
    my ($rc, $out) = run(@cmd, "$dir/secret", 'request', $platform, $user, defined $name ? ($name) : ());
    my ($status, $body) = $out =~ /^(\d+) (.*)$/ or return (0, { raw => $out });
    return ($status, $json->decode($body));
}

# One failed guarded attempt on (policy, key), as the module records it.
sub guard_fail ($policy, $key, $max, $lockout) {
    my ($rc, $out) = run($tool, '--redis', "127.0.0.1:$port", "$dir/secret", 'guard-fail', $policy, $key, $max, $lockout);
    die "guard-fail: $rc $out" if $rc;
}

# The log label of a guard key: 8 hex digits of HMAC(secret, "g\0" POLICY "\0" KEY).
sub label ($policy, $key) { unpack('H8', hmac_sha256("g\0$policy\0$key", $secret)) }

# A subscriber on the events channel.
my $sub = $redis->subscriber('pairguard:events');
sub events () { $sub->messages }

# ---- usage and store errors ----

{
    my ($rc, undef, $err) = ctl();
    is($rc, 2, 'no command is a usage error');
    ($rc) = ctl('frobnicate');
    is($rc, 2, 'an unknown command is a usage error');
    ($rc) = ctl('approve', 'telegram');
    is($rc, 2, 'a missing argument is a usage error');
    ($rc) = ctl('approve', 'Tele Gram', 'ABCD2345');
    is($rc, 2, 'an invalid platform name is a usage error');
    ($rc, undef, $err) = ctl('--secret-file', "$dir/nonexistent", 'pending');
    is($rc, 2, 'an unreadable secret file is a usage error');
    write_file("$dir/short", 'x' x 31);
    ($rc, undef, $err) = ctl('--secret-file', "$dir/short", 'pending');
    is($rc, 2, 'a secret of fewer than 32 bytes is refused');
    like($err, qr/at least 32/, 'and the reason is given');
    ($rc, undef, $err) = ctl('--redis', '127.0.0.1:' . free_port(), 'pending');
    is($rc, 3, 'an unreachable store exits with 3');
    ($rc) = ctl('--redis', '127.0.0.1:' . free_port() . ' password=hunter2', 'pending');
    is($rc, 3, 'an unreachable store with a password exits with 3 too');
    my ($rc2, $out) = ctl('help');
    is($rc2, 0, 'help exits with 0');
    like($out, qr/approve PLATFORM CODE/, 'help lists the commands');
}

# ---- pending codes ----

{
    my ($st, $a) = request('whatsapp', '+15551234567', 'Alice');
    is($st, 201, 'a first request gets a code');
    like($a->{code}, qr/^[A-HJ-NP-Z2-9]{8}$/, 'the code is 8 symbols of the unambiguous alphabet');
    is($a->{expires_in}, 3600, 'it expires in one hour');
    my $alice = $a->{code};

    ($st, $a) = request('whatsapp', '15551234567@s.whatsapp.net', 'Alice');
    is($st, 429, 'the same whatsapp user under another form is rate limited');
    is($a->{error}, 'rate_limited', 'as rate_limited');
    cmp_ok($a->{retry_after}, '>', 590, 'for about ten minutes');

    ok((request('whatsapp', '222', 'Bob'))[0] == 201 && (request('whatsapp', '333', 'Carol'))[0] == 201,
       'two more users get codes');
    ($st, $a) = request('whatsapp', '444', 'Dan');
    is($st, 429, 'a fourth pending code on the platform is refused');
    is($a->{error}, 'too_many_pending', 'as too_many_pending');

    my ($rc, $list) = ctl_json('pending');
    is($rc, 0, 'pending lists');
    is(scalar @{ $list->{pending} }, 3, 'three codes are pending');
    my ($first) = @{ $list->{pending} };
    is_deeply([sort keys %$first], [sort qw(platform id user_id user_name age_seconds expires_in)],
              'an entry has the fields of the HTTP endpoint');
    is($first->{user_id}, '15551234567', 'the whatsapp user id is normalised');
    is($first->{user_name}, 'Alice', 'with its name');
    like($first->{id}, qr/^[0-9a-f]{8}$/, 'the id is 8 hex digits of the code HMAC');
    ok($first->{expires_in} > 3590 && $first->{age_seconds} < 10, 'age and expiry are in seconds');

    my ($rc2, $table) = ctl('pending', 'whatsapp');
    like($table, qr/^PLATFORM\s+ID\s+USER_ID\s+USER_NAME\s+AGE\s+EXPIRES_IN\n/, 'the human listing is a table');
    like($table, qr/whatsapp\s+$first->{id}\s+15551234567\s+Alice/, 'with one row per code');

    my $keys = redis('KEYS', '*');
    my @values = map { my $t = redis('TYPE', $_); $t eq 'hash' ? @{ redis('HGETALL', $_) } : $t eq 'string' ? redis('GET', $_) : () } @$keys;
    ok(!grep({ index($_, $alice) >= 0 } @$keys, @values), 'Redis holds no raw code, in keys or values');
    ok(!grep({ /15551234567|whatsapp|Alice/ } @$keys), 'key names hold no platform or user in clear');
    my @tags = map { /\{(p:[^}]+)\}/ ? $1 : () } @$keys;
    my %tags = map { $_ => 1 } @tags;
    is(scalar keys %tags, 1, 'all keys of the platform share one hash tag');

    ($rc, $list) = ctl_json('clear-pending', 'whatsapp');
    is_deeply([$rc, $list], [0, { cleared => 3 }], 'clear-pending drops the three codes');
    ($rc, $list) = ctl_json('pending');
    is_deeply($list, { pending => [] }, 'nothing is pending any more');
    ($rc, $list) = ctl_json('approve', 'whatsapp', $alice);
    is($rc, 1, 'a cleared code no longer approves');
    redis('FLUSHALL');
}

# ---- approval ----

{
    events();
    my ($st, $a) = request('whatsapp', '+15551234567', 'Alice');
    (my $typed = lc $a->{code}) =~ s/^(....)/$1 - /;
    my ($rc, $r) = ctl_json('approve', 'WhatsApp', $typed);
    is($rc, 0, 'approve accepts any case, spaces and dashes');
    is_deeply($r, { platform => 'whatsapp', user_id => '15551234567', user_name => 'Alice' },
              'and answers with the user');
    ($rc, $r) = ctl_json('approve', 'whatsapp', $a->{code});
    is_deeply([$rc, $r], [1, { error => 'invalid_code' }], 'a code approves once');

    # (the request and the wrong second approval publish their own events)
    my @ev = grep { !/^(requested|wrong_approval)\|/ } events();
    is(scalar @ev, 1, 'the approval published one event');
    like($ev[0], qr/^approved\|[A-Za-z0-9_-]{22}\|[A-Za-z0-9_-]{22}$/, 'approved|TAG|USER_HASH');
    unlike($ev[0], qr/15551234567/, 'without the user id');

    ($rc, $r) = ctl_json('approved');
    is(scalar @{ $r->{approved} }, 1, 'one approved user');
    is_deeply([sort keys %{ $r->{approved}[0] }], [qw(approved_at platform user_id user_name)],
              'an approved entry has the fields of the HTTP endpoint');
    cmp_ok(abs($r->{approved}[0]{approved_at} - time), '<', 10, 'approved_at is Unix seconds');

    redis('DEL', $_) for @{ redis('KEYS', '*:rate:*') };
    ($st, $a) = request('whatsapp', '15551234567@c.us', 'Alice B');
    ($rc) = ctl('approve', 'whatsapp', $a->{code});
    is($rc, 0, 'the same user approved again under another form');
    ($rc, $r) = ctl_json('approved', 'whatsapp');
    is_deeply([map { [$_->{user_id}, $_->{user_name}] } @{ $r->{approved} }], [['15551234567', 'Alice B']],
              're-approval replaces the entry');
    events();

    my ($rc2, $out) = ctl('revoke', 'whatsapp', '15551234567@s.whatsapp.net');
    is($rc2, 0, 'revoke by any form of the user');
    like($out, qr/revoked whatsapp user 15551234567/, 'says what it revoked');
    @ev = events();
    like($ev[0] // '', qr/^revoked\|[A-Za-z0-9_-]{22}\|[A-Za-z0-9_-]{22}$/, 'and publishes revoked|TAG|USER_HASH');
    ($rc, $r) = ctl_json('revoke', 'whatsapp', '+15551234567');
    is_deeply([$rc, $r], [1, { error => 'not_found' }], 'revoking again: not found, exit 1');
    ($rc, $r) = ctl_json('approved');
    is_deeply($r, { approved => [] }, 'no approved users left');
    redis('FLUSHALL');
}

# ---- wrong approvals: burned codes, platform lockout ----

{
    my $policy = 'max_failures=3 lockout=1h code_max_failures=2';
    my (undef, $a) = request('telegram', '42', 'Bob');
    my (undef, $b) = request('telegram', '43', 'Eve');
    my ($rc, $r) = ctl_json('--policy', $policy, 'approve', 'telegram', 'AAAA-AAAA');
    is_deeply([$rc, $r], [1, { error => 'invalid_code' }], 'a wrong code: invalid_code, exit 1');
    ($rc, $r) = ctl_json('approve', 'telegram', 'AAAA');
    is($rc, 1, 'a code of the wrong shape is refused too');
    ($rc, $r) = ctl_json('pending', 'telegram');
    is(scalar @{ $r->{pending} }, 2, 'one wrong approval leaves both codes');
    my ($rc2, undef, $err) = ctl('--policy', $policy, 'approve', 'telegram', 'BBBBBBBB');
    like($err, qr/2 pending code\(s\) burned/, 'the second wrong approval burns both codes');
    ($rc, $r) = ctl_json('pending', 'telegram');
    is_deeply($r, { pending => [] }, 'burned codes are gone');
    ($rc, $r) = ctl_json('approve', 'telegram', $a->{code});
    is($rc, 1, 'a burned code no longer approves');

    ($rc2, undef, $err) = ctl('--policy', $policy, 'approve', 'telegram', 'CCCCCCCC');
    like($err, qr/now locked for 1h00m/, 'the third wrong approval locks the platform');

    ($rc, $r) = ctl_json('--policy', $policy, 'approve', 'telegram', 'DDDDDDDD');
    is($rc, 1, 'a locked platform refuses approvals');
    is($r->{error}, 'locked', 'as locked');
    cmp_ok($r->{retry_after}, '>', 3590, 'with retry_after');
    my ($st, $q) = request('telegram', '77', 'Zed');
    is_deeply([$st, $q->{error}], [429, 'locked'], 'and new requests');
    ($st) = request('signal', '77', 'Zed');
    is($st, 201, 'other platforms are not locked');

    ($rc, $r) = ctl_json('locks');
    is_deeply($r->{locks}, [{ type => 'pairing', platform => 'telegram', locked => JSON::PP::true,
                              retry_after => $r->{locks}[0]{retry_after}, failures => 0 }],
              'locks lists the platform lock');
    my ($rc3, $table) = ctl('locks');
    like($table, qr/pairing\s+telegram\s+(59m|1h00m)/, 'in a table too');

    events();
    ($rc) = ctl('unlock', '--platform', 'telegram');
    is($rc, 0, 'unlock --platform lifts it');
    my @ev = events();
    like($ev[0] // '', qr/^unlocked\|p\|[A-Za-z0-9_-]{22}$/, 'and publishes unlocked|p|TAG');
    ($rc) = ctl('unlock', '--platform', 'telegram');
    is($rc, 1, 'unlocking an unlocked platform: exit 1');

    ($st, $q) = request('telegram', '77', 'Zed');
    is($st, 201, 'requests are taken again');
    ctl('--policy', $policy, 'approve', 'telegram', 'EEEEEEEE');
    ($rc, $r) = ctl_json('pending', 'telegram');
    is(scalar @{ $r->{pending} }, 1, 'one wrong approval spends one attempt of the code');
    ctl('--policy', $policy, 'approve', 'telegram', 'FFFFFFFF');
    ($rc, $r) = ctl_json('--policy', $policy, 'approve', 'telegram', $q->{code});
    is($rc, 1, 'at code_max_failures wrong approvals the code is burned');

    ctl('unlock', '--platform', 'telegram');    # forgets the failures too
    redis('DEL', $_) for @{ redis('KEYS', '*:rate:*') };
    ($st, $q) = request('telegram', '77', 'Zed');
    ctl('--policy', $policy, 'approve', 'telegram', 'GGGGGGGG');
    ctl('--policy', $policy, 'approve', 'telegram', 'HHHHHHHH');
    redis('DEL', $_) for @{ redis('KEYS', '*:rate:*') };
    ($st, $q) = request('telegram', '78', 'Yan');
    ($rc, $r) = ctl_json('--policy', $policy, 'approve', 'telegram', $q->{code});
    is($rc, 0, 'a right code after two wrong ones approves');
    ($rc, $r) = ctl_json('--policy', $policy, 'approve', 'telegram', 'JJJJJJJJ');
    ($rc, $r) = ctl_json('--policy', $policy, 'approve', 'telegram', 'KKKKKKKK');
    is($r->{error}, 'invalid_code', 'the success reset the platform failures: two more wrong ones do not lock');
    redis('FLUSHALL');
}

# ---- expiry ----

{
    my ($st, $a) = request('telegram', '42', 'Bob', policy => 'code_ttl=1s');
    is($a->{expires_in}, 1, 'a code_ttl of 1s');
    sleep 1.2;
    my ($rc, $r) = ctl_json('pending');
    is_deeply($r, { pending => [] }, 'an expired code is not listed');
    ($rc) = ctl('approve', 'telegram', $a->{code});
    is($rc, 1, 'nor approved');
    is(scalar @{ redis('KEYS', '*:pending') }, 0, 'and is pruned from Redis');
    redis('FLUSHALL');
}

# ---- guard locks ----

{
    guard_fail('claim_ip', '10.0.0.1', 2, '10m') for 1 .. 2;    # locked
    guard_fail('claim_ip', '10.0.0.2', 5, '10m');                # one failure, not locked
    my $label = label('claim_ip', '10.0.0.1');

    my ($rc, $r) = ctl_json('locks');
    is_deeply([map { [$_->{type}, $_->{label}] } @{ $r->{locks} }], [['guard', $label]],
              'locks lists the locked guard key by its label');
    cmp_ok($r->{locks}[0]{retry_after}, '>', 590, 'with its remaining lock');
    my ($rc2, $table) = ctl('locks');
    like($table, qr/^TYPE\s+KEY\s+LOCKED_FOR\s+FAILURES\nguard\s+$label\s+(9m5\d|10m00)s/, 'as a table too');

    ($rc, $r) = ctl_json('locks', 'claim_ip', '10.0.0.1', '10.0.0.2');
    is_deeply([map { [$_->{label}, $_->{locked} ? 1 : 0, $_->{failures}] } @{ $r->{locks} }],
              [[$label, 1, 0], [label('claim_ip', '10.0.0.2'), 0, 1]],
              'locks POLICY KEY... shows those keys, locked or not');
    ($rc, $r) = ctl_json('locks', 'other_policy', '10.0.0.1');
    ok(!$r->{locks}[0]{locked}, 'the same key under another policy is another key');

    events();
    ($rc) = ctl('unlock', 'claim_ip', '10.0.0.1');
    is($rc, 0, 'unlock POLICY KEY');
    ($rc, $r) = ctl_json('locks', 'claim_ip', '10.0.0.1');
    is_deeply([$r->{locks}[0]{locked} ? 1 : 0, $r->{locks}[0]{failures}], [0, 0], 'clears the lock and the failures');
    my @ev = events();
    like($ev[0] // '', qr/^unlocked\|g\|[A-Za-z0-9_-]{8,43}$/, 'and publishes unlocked|g|TAG');
    ($rc) = ctl('unlock', 'claim_ip', '10.0.0.1');
    is($rc, 1, 'unlocking it again: nothing there, exit 1');
    my $out;
    ($rc2, $out) = ctl('locks');
    is($out, "no locks\n", 'no locks left');
    redis('FLUSHALL');
}

# ---- prefix ----

{
    my ($st) = request('telegram', '42', 'Bob');
    my ($rc, $r) = ctl_json('--prefix', 'other:', 'pending');
    is_deeply($r, { pending => [] }, 'another prefix sees other state');
    ($rc, $r) = ctl_json('--redis', "127.0.0.1:$port prefix=pairguard:", 'pending');
    is(scalar @{ $r->{pending} }, 1, 'prefix= in the address works like pairguard_redis');
}

done();
