#!/usr/bin/perl
# pairguardctl against the Redis that operators run (SPEC section 1, issue
# 10): --redis takes the directive's words. A TLS redis-server (right CA,
# wrong CA, tls_verify=off, name check, required client certificate), a
# Sentinel set (before and after a failover), a Redis Cluster (locks on
# several masters, unlock, MOVED after a slot moves, ASK while it moves, a
# CLUSTER FAILOVER, trusted devices on several masters and unlock --device),
# and usage errors. No password is ever printed.
#
# Store state is made by pairguard_test_tool the way the module makes it.
# Environment: PG_CTL (build/pairguardctl), PG_TEST_TOOL
# (build/cmake/pairguard_test_tool), as in t/lib/PgTest.pm.

use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 ();
use Time::HiRes qw(time sleep);
use PgTest qw(-nomodule);
use PgRedis;

my $ctl = ctl_path();
my $tool = test_tool_path();
plan skip_all => "$ctl or $tool not built (scripts/build.sh)" unless -x $ctl && -x $tool;
plan skip_all => 'redis-cli or openssl missing' unless have_redis_cli();

my $dir = testdir();
my $json = JSON::PP->new->canonical;
my $secret = join '', map { chr(int(rand(256))) } 1 .. 32;
write_file("$dir/secret", $secret, 0600);
$ENV{PAIRGUARD_SECRET_FILE} = "$dir/secret";
delete $ENV{$_} for qw(PAIRGUARD_REDIS PAIRGUARD_PREFIX PAIRGUARD_PAIRING_POLICY PAIRGUARD_REDIS_PASSWORD);

my @PASSWORDS = ('tls-Pw-41x', 'data-Pw-93q', 'sentinel-Pw-27k', 'cluster-Pw-55z', 'wrong-Pw-00a');
my $ALL_OUTPUT = '';

sub q_ ($s) { $s =~ s/'/'\\''/g; "'$s'" }

# (exit status, stdout, stderr)
sub run (@cmd) {
    my $out = `@{[ join ' ', map { q_($_) } @cmd ]} 2>$dir/stderr`;
    my $rc = $? >> 8;
    my $err = read_file("$dir/stderr");
    $ALL_OUTPUT .= $out . $err;
    return ($rc, $out, $err);
}

sub ctl ($redis, @args) { run($ctl, '--redis', $redis, @args) }

# with standard input from a file
sub ctl_json_in ($file, $redis, @args) {
    my $out = `@{[ join ' ', map { q_($_) } $ctl, '--redis', $redis, '--json', @args ]} <@{[ q_($file) ]} 2>$dir/stderr`;
    my $rc = $? >> 8;
    my $err = read_file("$dir/stderr");
    $ALL_OUTPUT .= $out . $err;
    return ($rc, eval { $json->decode($out) } // { unparsable => $out, stderr => $err }, $err);
}
sub ctl_json ($redis, @args) {
    my ($rc, $out, $err) = run($ctl, '--redis', $redis, '--json', @args);
    return ($rc, eval { $json->decode($out) } // { unparsable => $out, stderr => $err }, $err);
}

# a code request as the module's request endpoint makes it: (status, answer)
sub request ($redis, $platform, $user, $name = 'Bob') {
    my ($rc, $out, $err) = run($tool, '--redis', $redis, "$dir/secret", 'request', $platform, $user, $name);
    my ($status, $body) = $out =~ /^(\d+) (.*)$/ or return (0, { raw => $out . $err });
    return ($status, $json->decode($body));
}

# failed guarded attempts on (policy, key), as the module records them
sub guard_fail ($redis, $policy, $key, $max, $lockout) {
    my ($rc, $out, $err) = run($tool, '--redis', $redis, "$dir/secret", 'guard-fail', $policy, $key, $max, $lockout);
    return $rc == 0 ? '' : "guard-fail $rc: $out$err";
}

sub label ($policy, $key) { unpack('H8', hmac_sha256("g\0$policy\0$key", $secret)) }

sub locked_labels ($redis) {
    my ($rc, $r, $err) = ctl_json($redis, 'locks');
    return "rc $rc: $err" if $rc;
    return join ' ', sort map { $_->{label} // $_->{platform} } @{ $r->{locks} };
}

# ---- usage errors ----

{
    my ($rc, $out, $err) = ctl('127.0.0.1:6379 frobnicate=1', 'pending');
    is($rc, 2, 'an unknown --redis word: usage error, exit 2');
    like($err, qr/--redis: invalid parameter "frobnicate"/, '... naming the word');
    ($rc, $out, $err) = ctl('127.0.0.1:6379 password=wrong-Pw-00a frobnicate=wrong-Pw-00a', 'pending');
    is($rc, 2, 'a bad word next to a password: exit 2');
    unlike($err, qr/wrong-Pw-00a/, '... and neither value is echoed');
    ($rc, $out, $err) = ctl('sentinel=127.0.0.1:26379', 'pending');
    is($rc, 2, 'sentinel= without master=: exit 2');
    like($err, qr/master=NAME/, '... saying master= is needed');
    ($rc, $out, $err) = ctl('cluster=127.0.0.1:7000 db=2', 'pending');
    is($rc, 2, 'cluster= with db=: exit 2');
    ($rc, $out, $err) = ctl('127.0.0.1:6379 tls_verify=off', 'pending');
    is($rc, 2, 'tls_verify without tls: exit 2');
    like($err, qr/need "tls"/, '... saying so');
    ($rc, $out, $err) = ctl("127.0.0.1:6379 tls tls_trusted_certificate=$dir/no-such-ca.pem", 'pending');
    is($rc, 2, 'an unreadable CA file: exit 2');
    like($err, qr/tls_trusted_certificate: cannot read .*no-such-ca\.pem/, '... naming it');
    ($rc, $out, $err) = ctl('127.0.0.1:6379 tls tls_certificate=/etc/hostname', 'pending');
    is($rc, 2, 'a client certificate without its key: exit 2');
    ($rc, $out, $err) = ctl('[::1', 'pending');
    is($rc, 2, 'a broken address: exit 2');
}

# ---- TLS ----

{
    my $tls = tls_redis(client_certs => 'optional', password => 'tls-Pw-41x');
    my $p = $tls->port;
    my $ca = $tls->ca;
    my $good = "127.0.0.1:$p tls tls_trusted_certificate=$ca password=tls-Pw-41x";

    my ($rc, $r, $err) = ctl_json($good, 'pending');
    is_deeply([$rc, $r], [0, { pending => [] }], 'TLS with the right CA: pending answers') or diag $err;
    my ($st, $a) = request($good, 'telegram', '42');
    is($st, 201, 'the test tool speaks TLS too') or diag explain $a;
    ($rc, $r) = ctl_json($good, 'pending');
    is(scalar @{ $r->{pending} // [] }, 1, 'the code is listed over TLS');
    ($rc, $r) = ctl_json($good, 'approve', 'telegram', $a->{code});
    is($rc, 0, 'and approved over TLS');
    ($rc, $r) = ctl_json($good, 'approved', 'telegram');
    is(scalar @{ $r->{approved} // [] }, 1, 'approved lists it');

    ($rc, undef, $err) = ctl("localhost:$p tls tls_trusted_certificate=$ca password=tls-Pw-41x", 'pending');
    is($rc, 0, 'by name (localhost): the name check passes') or diag $err;

    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=" . $tls->wrong_ca . ' password=tls-Pw-41x', 'pending');
    is($rc, 3, 'the wrong CA: refused, exit 3');
    like($err, qr/redis 127\.0\.0\.1:$p unreachable: TLS certificate verification failed/, '... with a clear error') or diag $err;

    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=$ca tls_server_name=redis.example.org password=tls-Pw-41x", 'pending');
    is($rc, 3, 'tls_server_name not in the certificate: refused, exit 3');
    like($err, qr/verification failed: .*redis\.example\.org/, '... the name check says which name') or diag $err;

    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_verify=off password=tls-Pw-41x", 'pending');
    is($rc, 0, 'tls_verify=off connects without a CA') or diag $err;
    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_verify=off tls_server_name=redis.example.org password=tls-Pw-41x", 'pending');
    is($rc, 0, 'tls_verify=off: no name check either') or diag $err;

    ($rc, undef, $err) = ctl("127.0.0.1:$p tls password=tls-Pw-41x timeout=500ms", 'pending');
    is($rc, 3, 'tls without a CA: the system store does not know the test CA, exit 3');

    ($rc, undef, $err) = ctl("127.0.0.1:$p password=tls-Pw-41x timeout=500ms", 'pending');
    is($rc, 3, 'plain TCP to a TLS port: exit 3');

    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=$ca password=wrong-Pw-00a", 'pending');
    is($rc, 3, 'TLS with a wrong password: exit 3');
    like($err, qr/authentication failed/, '... authentication failed');
    {
        local $ENV{PAIRGUARD_REDIS_PASSWORD} = 'tls-Pw-41x';
        ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=$ca", 'pending');
        is($rc, 0, 'the password from PAIRGUARD_REDIS_PASSWORD') or diag $err;
    }

    # a server that does not answer: the handshake is bounded by timeout=
    kill 'STOP', $tls->pid;
    my $t0 = time;
    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=$ca password=tls-Pw-41x timeout=300ms", 'pending');
    my $took = time - $t0;
    kill 'CONT', $tls->pid;
    is($rc, 3, 'a silent TLS server: exit 3');
    like($err, qr/no answer in time \(TLS handshake\)/, '... no answer in time during the handshake') or diag $err;
    cmp_ok($took, '<', 2, sprintf('... after the timeout (%.2fs)', $took));
    $tls->stop;

    my $mtls = tls_redis(client_certs => 'yes');
    $p = $mtls->port;
    $ca = $mtls->ca;
    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=$ca", 'pending');
    is($rc, 3, 'client certificate required, none given: exit 3');
    like($err, qr/unreachable: (TLS|connection closed)/, '... with the TLS error') or diag $err;
    my $cert = 'tls_certificate=' . $mtls->client_cert . ' tls_certificate_key=' . $mtls->client_key;
    ($rc, $r, $err) = ctl_json("127.0.0.1:$p tls tls_trusted_certificate=$ca $cert", 'pending');
    is_deeply([$rc, $r], [0, { pending => [] }], 'with the client certificate: works') or diag $err;
    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=$ca tls_certificate=" . $mtls->wrong_client_cert
                             . ' tls_certificate_key=' . $mtls->wrong_client_key, 'pending');
    is($rc, 3, 'a client certificate of another CA: exit 3');
    ($rc, undef, $err) = ctl("127.0.0.1:$p tls tls_trusted_certificate=$ca tls_certificate=" . $mtls->client_cert
                             . ' tls_certificate_key=' . $mtls->wrong_client_key, 'pending');
    is($rc, 3, 'a client certificate with the wrong key: exit 3');
    like($err, qr/tls_certificate_key/, '... naming tls_certificate_key') or diag $err;
    $mtls->stop;
}

# ---- Sentinel ----

{
    # Redis with an ACL user (the default user off), sentinels with their own
    my $s = sentinel_set(master_name => 'edge', user => 'pgctl', password => 'data-Pw-93q', sentinel_user => 'sen',
                         sentinel_password => 'sentinel-Pw-27k');
    my $words = $s->sentinel_words . ' user=pgctl password=data-Pw-93q sentinel_user=sen sentinel_password=sentinel-Pw-27k';

    my ($rc, $r, $err) = ctl_json($words, 'pending');
    is_deeply([$rc, $r], [0, { pending => [] }], 'Sentinel: pending answers') or diag $err;
    my ($st, $a) = request($words, 'telegram', '42');
    is($st, 201, 'the test tool finds the master too') or diag explain $a;
    is(guard_fail($words, 'claim_ip', '10.0.0.1', 1, '10m'), '', 'a guard key locked through the sentinels');
    is(locked_labels($words), label('claim_ip', '10.0.0.1'), 'locks lists it');

    # the first sentinel does not answer: the next one is asked
    my @sp = $s->sentinel_ports;
    my $dead = free_port();
    my $skip = "sentinel=127.0.0.1:$dead," . join(',', map { "127.0.0.1:$_" } @sp)
        . ' master=edge user=pgctl password=data-Pw-93q sentinel_user=sen sentinel_password=sentinel-Pw-27k';
    ($rc, $r, $err) = ctl_json($skip, 'pending');
    is($rc, 0, 'a dead sentinel first: the next one answers') or diag $err;

    my $old = $s->master_port;
    my $new = $s->failover;
    isnt($new, $old, 'failover: a new master');
    ($rc, $r, $err) = ctl_json($words, 'pending');
    is_deeply([$rc, scalar @{ $r->{pending} // [] }], [0, 1], 'after the failover: the pending code is still listed') or diag $err;
    is(locked_labels($words), label('claim_ip', '10.0.0.1'), 'the lock from before the failover is still there');
    ($rc, undef, $err) = ctl($words, 'unlock', 'claim_ip', '10.0.0.1');
    is($rc, 0, 'unlock writes to the new master') or diag $err;
    is(locked_labels($words), '', 'no locks left');
    is($s->cmd('ROLE')->[0], 'master', 'the new master is the one the sentinels give');

    ($rc, undef, $err) = ctl($s->sentinel_words =~ s/master=edge/master=nope/r
                             . ' user=pgctl password=data-Pw-93q sentinel_user=sen sentinel_password=sentinel-Pw-27k', 'pending');
    is($rc, 3, 'an unknown master name: exit 3');
    like($err, qr/does not know master "nope"/, '... the sentinels do not know it') or diag $err;
    ($rc, undef, $err) = ctl($s->sentinel_words . ' user=pgctl password=data-Pw-93q sentinel_user=sen sentinel_password=wrong-Pw-00a', 'pending');
    is($rc, 3, 'a wrong sentinel password: exit 3');
    like($err, qr/sentinel 127\.0\.0\.1:\d+: authentication failed/, '... the sentinel refused it') or diag $err;
    ($rc, undef, $err) = ctl($s->sentinel_words . ' user=pgctl password=wrong-Pw-00a sentinel_user=sen sentinel_password=sentinel-Pw-27k', 'pending');
    is($rc, 3, 'a wrong data password: exit 3');
    like($err, qr/redis 127\.0\.0\.1:\d+: authentication failed/, '... the master refused it') or diag $err;
    ($rc, undef, $err) = ctl($s->sentinel_words . ' password=data-Pw-93q sentinel_user=sen sentinel_password=sentinel-Pw-27k', 'pending');
    is($rc, 3, 'the right password without the ACL user (default user off): exit 3');
    $s->stop;
}

# ---- Cluster ----

{
    my $c = cluster(password => 'cluster-Pw-55z');
    my $words = $c->cluster_words . ' password=cluster-Pw-55z';
    my @m = $c->masters;

    # guard locks spread over the masters
    my @keys = map { "10.1.0.$_" } 1 .. 12;
    my @errs = grep { $_ } map { guard_fail($words, 'claim_ip', $_, 1, '10m') } @keys;
    is_deeply(\@errs, [], 'twelve guard keys locked through the cluster');
    my %where;
    for my $p (@m) {
        my $n = @{ $c->cmd_at($p, 'KEYS', 'pairguard:{*}') };
        $where{$p} = $n if $n;
    }
    cmp_ok(scalar(keys %where), '>=', 2, 'the locked keys live on ' . scalar(keys %where) . ' masters');
    is(locked_labels($words), join(' ', sort map { label('claim_ip', $_) } @keys), 'locks lists the keys of every master');

    my ($rc, $r, $err) = ctl_json($words, 'locks', 'claim_ip', @keys[0 .. 3]);
    is_deeply([$rc, [map { $_->{locked} ? 1 : 0 } @{ $r->{locks} // [] }]], [0, [1, 1, 1, 1]], 'locks POLICY KEY... on the cluster') or diag $err;

    ($rc, undef, $err) = ctl($words, 'unlock', 'claim_ip', $keys[0]);
    is($rc, 0, 'unlock on the cluster') or diag $err;
    ($rc, $r) = ctl_json($words, 'locks', 'claim_ip', $keys[0]);
    ok(!$r->{locks}[0]{locked}, 'the key is unlocked');

    # the slot of a locked key moves to another master: MOVED is followed
    my $store_key = "pairguard:{" . tag_of($c, $keys[1]) . "}";
    my $slot = $c->slot_of($store_key);
    my $from = $c->node_for_slot($slot);
    my ($to) = grep { $_ != $from } @m;
    $c->move_slot($slot, $to);
    is($c->node_for_slot($slot), $to, "slot $slot moved from $from to $to");
    ($rc, $r, $err) = ctl_json($words, 'locks', 'claim_ip', $keys[1]);
    is_deeply([$rc, $r->{locks}[0]{locked} ? 1 : 0], [0, 1], 'after the move: the lock is found (MOVED followed)') or diag $err;
    ($rc, undef, $err) = ctl($words, 'unlock', 'claim_ip', $keys[1]);
    is($rc, 0, 'and unlocked') or diag $err;

    # a slot half way (the key migrated, the slot not yet): ASK is followed
    $store_key = "pairguard:{" . tag_of($c, $keys[2]) . "}";
    $slot = $c->slot_of($store_key);
    $from = $c->node_for_slot($slot);
    ($to) = grep { $_ != $from } @m;
    $c->begin_migration($slot, $to);
    $c->migrate_keys($slot, $store_key);
    ($rc, $r, $err) = ctl_json($words, 'locks', 'claim_ip', $keys[2]);
    is_deeply([$rc, $r->{locks}[0]{locked} ? 1 : 0], [0, 1], 'while the slot migrates: the lock is found (ASK followed)') or diag $err;
    $c->finish_migration($slot);

    # redis-cli --cluster reshard, then every lock is still listed and usable
    $c->reshard($m[0], $m[2], 200);
    my @left = @keys[2 .. 11];
    is(locked_labels($words), join(' ', sort map { label('claim_ip', $_) } @left), 'after a reshard: locks lists them all');

    # a master fails over to its replica
    $store_key = "pairguard:{" . tag_of($c, $keys[3]) . "}";
    my $promoted = $c->failover_replica($c->node_for_key($store_key));
    is($c->node_for_key($store_key), $promoted, 'CLUSTER FAILOVER: the key\'s slot is on the promoted replica');
    is(locked_labels($words), join(' ', sort map { label('claim_ip', $_) } @left), 'after CLUSTER FAILOVER: locks lists them all');
    ($rc, undef, $err) = ctl($words, 'unlock', 'claim_ip', $keys[3]);
    is($rc, 0, 'unlock on the promoted master') or diag $err;

    # trusted devices (PREFIX{d:TAG}, a guard key of their own) on several
    # masters: locks lists them as devices, unlock --device LABEL finds each
    # by SCAN on every master
    my $gkey = "pairguard:{" . tag_of($c, $keys[4]) . "}";
    my $locked_value = $c->cmd_at($c->node_for_key($gkey), 'GET', $gkey);
    my (%device, %device_at);
    while (keys %device < 4 || keys %device_at < 2) {
        last if keys %device >= 40;
        my $tag = MIME::Base64::encode_base64url(join '', map { chr(int(rand(256))) } 1 .. 12);
        my $dk = "pairguard:{d:$tag}";
        my $at = $c->node_for_key($dk);
        $c->cmd_at($at, 'SET', $dk, $locked_value, 'PX', 600000);
        $device{ unpack('H8', MIME::Base64::decode_base64url($tag)) } = $dk;
        $device_at{$at} = 1;
    }
    cmp_ok(scalar(keys %device_at), '>=', 2, scalar(keys %device) . ' locked devices on ' . scalar(keys %device_at) . ' masters');
    my $devices_listed = sub {
        my ($lrc, $lr, $lerr) = ctl_json($words, 'locks');
        return "rc $lrc: $lerr" if $lrc;
        return join ' ', sort map { $_->{label} } grep { $_->{type} eq 'device' } @{ $lr->{locks} // [] };
    };
    is($devices_listed->(), join(' ', sort keys %device), 'locks lists the devices of every master (type device)');
    my @unlock_errs = grep { $_ } map { my ($urc, undef, $uerr) = ctl($words, 'unlock', '--device', $_); $urc ? "$_: $urc $uerr" : '' }
        sort keys %device;
    is_deeply(\@unlock_errs, [], 'unlock --device LABEL on the cluster, each device on its master');
    is($devices_listed->(), '', 'no device left locked');
    is((ctl($words, 'unlock', '--device', (sort keys %device)[0]))[0], 1, 'unlocking a device again finds nothing (exit 1)');

    # the first seed is dead: the next one gives the map
    my $dead = free_port();
    ($rc, undef, $err) = ctl("cluster=127.0.0.1:$dead," . join(',', map { "127.0.0.1:$_" } $c->masters) . ' password=cluster-Pw-55z', 'locks');
    is($rc, 0, 'a dead seed first: the next one gives the slot map') or diag $err;
    ($rc, undef, $err) = ctl($c->cluster_words . ' password=wrong-Pw-00a', 'locks');
    is($rc, 3, 'a wrong password on the cluster: exit 3');

    # pairing on the cluster
    my ($st, $a) = request($words, 'telegram', '42');
    is($st, 201, 'pairing request on the cluster') or diag explain $a;
    ($rc, $r, $err) = ctl_json($words, 'pending');
    is_deeply([$rc, scalar @{ $r->{pending} // [] }], [0, 1], 'pending on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'approve', 'telegram', $a->{code} // 'none');
    is($rc, 0, 'approve on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'approved', 'telegram');
    is_deeply([$rc, scalar @{ $r->{approved} // [] }], [0, 1], 'approved on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'revoke', 'telegram', '42');
    is($rc, 0, 'revoke on the cluster') or diag $err;
    request($words, 'signal', '43');
    ($rc, $r, $err) = run($ctl, '--redis', $words, '--policy', 'max_failures=1 lockout=1h', 'approve', 'signal', 'AAAAAAAA');
    is($rc, 1, 'a wrong approval locks the platform (max_failures=1)') or diag $err;
    my %platforms = map { ($_->{type} eq 'pairing' ? $_->{platform} : '') => 1 } @{ (ctl_json($words, 'locks'))[1]{locks} // [] };
    ok($platforms{signal}, 'locks lists the locked platform on the cluster');
    ($rc, undef, $err) = ctl($words, 'unlock', '--platform', 'signal');
    is($rc, 0, 'unlock --platform on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'clear-pending');
    is($rc, 0, 'clear-pending on the cluster') or diag $err;

    # users, keys, challenges and sessions on the cluster
    run('openssl', 'genpkey', '-algorithm', 'ed25519', '-out', "$dir/ed.key");
    run('openssl', 'pkey', '-in', "$dir/ed.key", '-pubout', '-out', "$dir/ed.pem");
    write_file("$dir/pw", "alice-login-pw\n");
    ($rc, $r, $err) = ctl_json_in("$dir/pw", $words, 'user', 'add', 'alice', '--password-stdin');
    is($rc, 0, 'user add on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'user', 'list');
    is_deeply([$rc, [map { ref $_ ? $_->{user} // $_->{name} : $_ } @{ $r->{users} // [] }]], [0, ['alice']], 'user list on the cluster') or diag explain [$r, $err];
    ($rc, $r, $err) = ctl_json($words, 'key', 'set', 'alice', "$dir/ed.pem");
    is($rc, 0, 'key set on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'challenge', 'alice', '--out', "$dir/ch.json");
    is($rc, 0, 'challenge on the cluster') or diag $err;
    if ($rc == 0) {
        my $ch = $json->decode(read_file("$dir/ch.json"));
        write_file("$dir/message", $ch->{message});
        run('openssl', 'pkeyutl', '-sign', '-inkey', "$dir/ed.key", '-rawin', '-in', "$dir/message", '-out', "$dir/sig.bin");
    }
    ($rc, undef, $err) = ctl($words, 'verify', 'alice', '--in', "$dir/sig.bin");
    is($rc, 0, 'verify on the cluster gives a session') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'sessions', 'alice');
    is_deeply([$rc, scalar @{ $r->{sessions} // [] }], [0, 1], 'sessions on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'logout', 'alice');
    is($rc, 0, 'logout on the cluster') or diag $err;
    ($rc, $r, $err) = ctl_json($words, 'user', 'del', 'alice');
    is($rc, 0, 'user del on the cluster') or diag $err;

    # the events stream (its own hash tag) is read on the node of its slot
    ($rc, my $out, $err) = ctl($words, 'events', '--count', '100');
    is($rc, 0, 'events on the cluster') or diag $err;
    TODO: {
        local $TODO = 'issue 10: the scripts XADD PREFIX{events}-stream (another slot, not in KEYS) inside pcall: '
            . 'in a Cluster only the scripts that run on the stream\'s master get their event in';
        is(scalar(() = $out =~ /^\S+ lock scope=guard/mg), 12, 'the twelve lock events are in the stream');
    }

    # one pairguardctl process follows the stream while its slot moves: the
    # XREAD gets MOVED and follows it
    my $stream = 'pairguard:{events}-stream';
    my $sslot = $c->slot_of($stream);
    my $owner = $c->node_for_slot($sslot);
    my $entries = $c->cmd_at($owner, 'XREVRANGE', $stream, '+', '-', 'COUNT', 1);
    my $payload = @$entries ? $entries->[0][1][1] : 'lock|g|AAAAAAAAAAA|600000';
    my $log = "$dir/follow.log";
    my $pid = PgTest::_spawn([$ctl, '--redis', $words, 'events', '--follow', '--count', '0'], $log);
    my $printed = sub { scalar(() = read_file($log) =~ /^\S+ \S+/mg) };
    ok(wait_until(sub { $c->cmd_at($owner, 'CLIENT', 'LIST') =~ /cmd=xread/ }, timeout => 5), 'events --follow waits in XREAD');
    $c->cmd_at($owner, 'XADD', $stream, '*', 'e', $payload);
    ok(wait_until(sub { $printed->() >= 1 }, timeout => 5), 'events --follow prints a new event') or diag read_file($log);
    my ($other) = grep { $_ != $owner } $c->masters;
    $c->move_slot($sslot, $other);
    $c->cmd_at($other, 'XADD', $stream, '*', 'e', $payload);
    ok(wait_until(sub { $printed->() >= 2 }, timeout => 8), 'after the stream\'s slot moved, the same process prints the next one (MOVED followed)')
        or diag read_file($log);
    ok(wait_until(sub { $c->cmd_at($other, 'CLIENT', 'LIST') =~ /cmd=xread/ }, timeout => 5), 'its XREAD now waits on the new owner');
    ok(PgTest::_alive($pid), 'and keeps following');
    PgTest::_stop_pid($pid, 'TERM', 5);
    $ALL_OUTPUT .= read_file($log);
    $c->stop;
}

# ---- Sentinel and Cluster in TLS ----

{
    my $s = sentinel_set(tls => 1, master_name => 'edge', password => 'data-Pw-93q');
    my $ca = $s->certs->{ca};
    my $words = $s->sentinel_words . " tls tls_trusted_certificate=$ca password=data-Pw-93q";
    is(guard_fail($words, 'claim_ip', '10.2.0.1', 1, '10m'), '', 'Sentinel in TLS: a guard key locked');
    is(locked_labels($words), label('claim_ip', '10.2.0.1'), 'Sentinel in TLS: locks lists it');
    $s->failover;
    is(locked_labels($words), label('claim_ip', '10.2.0.1'), 'Sentinel in TLS: still there after a failover');
    my ($rc, undef, $err) = ctl($s->sentinel_words . ' tls tls_trusted_certificate=' . $s->certs->{wrong_ca} . ' password=data-Pw-93q', 'locks');
    is($rc, 3, 'Sentinel in TLS, the wrong CA: exit 3');
    like($err, qr/sentinel 127\.0\.0\.1:\d+ unreachable: TLS certificate verification failed/, '... the sentinels are verified too') or diag $err;
    ($rc, undef, $err) = ctl($s->sentinel_words . ' password=data-Pw-93q timeout=500ms', 'locks');
    is($rc, 3, 'Sentinel in TLS without tls: exit 3');
    $s->stop;

    my $c = cluster(tls => 1, client_certs => 'yes', password => 'cluster-Pw-55z');
    my $certs = $c->certs;
    my $cw = $c->cluster_words . " tls tls_trusted_certificate=$certs->{ca} tls_certificate=$certs->{client_cert}"
        . " tls_certificate_key=$certs->{client_key} password=cluster-Pw-55z";
    my @keys = map { "10.3.0.$_" } 1 .. 6;
    is_deeply([grep { $_ } map { guard_fail($cw, 'claim_ip', $_, 1, '10m') } @keys], [], 'Cluster in TLS with a client certificate: six keys locked');
    is(locked_labels($cw), join(' ', sort map { label('claim_ip', $_) } @keys), 'Cluster in TLS: locks lists them from every master');
    ($rc, undef, $err) = ctl($cw, 'unlock', 'claim_ip', $keys[0]);
    is($rc, 0, 'Cluster in TLS: unlock') or diag $err;
    ($rc, undef, $err) = ctl($c->cluster_words . " tls tls_trusted_certificate=$certs->{ca} password=cluster-Pw-55z", 'locks');
    is($rc, 3, 'Cluster in TLS without the client certificate it requires: exit 3');
    $c->stop;
}

# the store key's hash tag of a guard key (found on the cluster by its label)
sub tag_of ($c, $key) {
    my $label = label('claim_ip', $key);
    for my $p ($c->masters) {
        for my $k (@{ $c->cmd_at($p, 'KEYS', 'pairguard:{*}') }) {
            my ($tag) = $k =~ /^pairguard:\{([^}]*)\}$/ or next;
            my $raw = MIME::Base64::decode_base64($tag =~ tr{-_}{+/}r);
            return $tag if unpack('H8', substr($raw, 0, 4)) eq $label;
        }
    }
    die "no store key for $key";
}

unlike($ALL_OUTPUT, qr/\Q$_\E/, "the password $_ is never printed") for @PASSWORDS;

done();
