#!/usr/bin/perl
# t/lib/PgRedis.pm proves itself: a TLS redis-server (right CA connects,
# wrong CA and a missing client certificate are refused), a Sentinel set that
# survives a failover, a Redis Cluster that routes, fails over and reshards.
# Only redis-server, redis-cli and openssl; no nginx, no module.

use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use PgTest qw(-nomodule);
use PgRedis;

plan skip_all => 'redis-cli or openssl missing' unless have_redis_cli();

my $t0 = time;

# ---- TLS ----
{
    my $tls = tls_redis(client_certs => 'optional');
    ok($tls->port, 'TLS redis-server on port ' . $tls->port);
    ok(-s $tls->ca && -s $tls->wrong_ca && -s $tls->client_cert && -s $tls->client_key, 'CA, wrong CA, client cert and key written');
    is($tls->cli('SET', 'k', 'v'), 'OK', 'SET over TLS with the CA');
    is($tls->cli('GET', 'k'), 'v', 'GET over TLS with the CA');
    my ($rc, $out) = $tls->try_cli({ cacert => $tls->wrong_ca }, 'PING');
    isnt($rc, 0, 'the wrong CA is refused');
    like($out, qr/certificate verify failed|SSL/i, '... by certificate verification') or diag $out;
    ($rc, $out) = $tls->try_cli({ insecure => 1, no_cert => 1 }, 'PING');
    is_deeply([$rc, $out =~ s/\s+\z//r], [0, 'PONG'], '--insecure without a client certificate connects (auth-clients optional)');
    ($rc, $out) = $tls->try_cli({ no_cert => 1, host => 'localhost' }, 'PING');
    is($rc, 0, 'the server certificate names localhost too');
    my $plain = eval { PgRedis::_cmd_at($tls->port, undef, 1, 'PING') };
    ok(!defined $plain, 'plain TCP to the TLS port gets no PONG');
    $tls->stop;

    my $strict = tls_redis(client_certs => 'yes', password => 's3cret');
    is($strict->cli('PING'), 'PONG', 'client certificate required: with it, and the password, PONG');
    ($rc, $out) = $strict->try_cli({ no_cert => 1 }, 'PING');
    isnt($rc, 0, 'client certificate required: without one, refused');
    ($rc, $out) = $strict->try_cli({ cert => $strict->wrong_client_cert, key => $strict->wrong_client_key }, 'PING');
    isnt($rc, 0, 'client certificate required: one from the wrong CA, refused');
    my $dir = $strict->dir;
    $strict->stop;
    ok(!-d $dir, 'stop removes the temp dir');
}

# ---- Sentinel ----
{
    my $s = sentinel_set(master_name => 'pg', password => 'datapw', sentinel_user => 'sen', sentinel_password => 'senpw');
    my $m = $s->master_port;
    is($s->reported_master($_), $m, "sentinel $_ reports the master") for 0 .. 2;
    is($s->cmd('ROLE')->[0], 'master', 'ROLE on the master');
    is($s->cmd_at($s->replica_port, 'ROLE')->[0], 'slave', 'ROLE on the replica');
    is($s->cmd('SET', 'before', '1'), 'OK', 'a write on the master');
    my $ok = eval { PgRedis::_cmd_at(($s->sentinel_ports)[0], undef, 1, 'SENTINEL', 'MASTERS'); 1 };
    ok(!$ok && $@ =~ /NOAUTH|NOPERM|WRONGPASS|auth/i, 'the sentinels want their ACL user') or diag $@;
    like($s->sentinel_words, qr/^sentinel=127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ master=pg$/, 'sentinel_words');

    my $f0 = time;
    my $new = $s->failover;
    isnt($new, $m, 'failover: a new master');
    is($s->master_port, $new, 'master_port follows');
    is($s->replica_port, $m, 'the old master is the replica');
    is($s->reported_master($_), $new, "sentinel $_ reports the new master") for 0 .. 2;
    is($s->cmd('GET', 'before'), '1', 'the write survived the failover');
    is($s->cmd('SET', 'after', '1'), 'OK', 'the new master takes writes');
    note(sprintf 'failover took %.1fs', time - $f0);
    my $back = $s->failover;
    is($back, $m, 'a second failover goes back');
    my $k0 = time;
    my $heir = $s->kill_master;
    is($heir, $new, 'kill_master: the sentinels promote the replica by themselves');
    is($s->cmd('GET', 'after'), '1', 'the data survived');
    ok(!defined $s->replica_port, 'no replica while the old master is dead');
    $s->revive;
    is($s->replica_port, $m, 'revive: the old master is a replica again');
    note(sprintf 'kill and revive took %.1fs', time - $k0);
    $s->stop;
}

# ---- Cluster ----
{
    my $c = cluster();
    is(scalar($c->ports), 6, 'six nodes');
    my @m = $c->masters;
    is(scalar(@m), 3, 'three masters');
    is(scalar($c->replicas), 3, 'three replicas');
    like($c->cmd_at($_, 'CLUSTER', 'INFO'), qr/cluster_state:ok/, "cluster_state:ok on $_") for $c->ports;
    is($c->cli('SET', 'foo', 'bar'), 'OK', 'SET through redis-cli -c');
    is($c->cli_at($m[2], 'GET', 'foo'), 'bar', 'GET through redis-cli -c from another node');
    is($c->slot_of('foo'), 12182, 'slot of foo');
    is($c->node_for_key('foo'), $c->node_for_slot(12182), 'node_for_key');
    is($c->cmd_at($c->node_for_key('foo'), 'GET', 'foo'), 'bar', 'the key is on node_for_key');

    # keys on every master
    my %on;
    for my $i (1 .. 30) { $c->cli('SET', "k$i", $i); $on{ $c->node_for_key("k$i") }++ }
    is(scalar(keys %on), 3, 'thirty keys spread over the three masters');

    # move foo's slot by hand, with an ASK window
    my $from = $c->node_for_key('foo');
    my ($to) = grep { $_ != $from } @m;
    $c->begin_migration(12182, $to);
    $c->migrate_keys(12182, 'foo');
    my $err = eval { $c->cmd_at($from, 'GET', 'foo'); '' } // $@;
    like($err, qr/ASK 12182 127\.0\.0\.1:$to/, 'a migrated key answers ASK while the slot migrates');
    $c->finish_migration(12182);
    is($c->node_for_key('foo'), $to, 'the slot moved');
    $err = eval { $c->cmd_at($from, 'GET', 'foo'); '' } // $@;
    like($err, qr/MOVED 12182 127\.0\.0\.1:$to/, 'the old master answers MOVED');
    is($c->cli('GET', 'foo'), 'bar', 'the key followed');

    # reshard with redis-cli
    my @before = map { scalar @{ $_->{slots} } } $c->nodes;
    $c->reshard($m[0], $m[1], 10);
    is($c->cli('GET', 'k1'), '1', 'keys readable after a reshard');

    # CLUSTER FAILOVER on a replica
    my $key_master = $c->node_for_key('k1');
    my $promoted = $c->failover_replica($key_master);
    isnt($promoted, $key_master, 'failover_replica: a replica took over');
    is($c->node_for_key('k1'), $promoted, 'the key\'s slot is on the promoted replica');
    is($c->cli('GET', 'k1'), '1', 'key survived CLUSTER FAILOVER');

    # a killed master
    my $victim = $c->node_for_key('k2');
    my $heir = $c->kill_master($victim);
    is($c->node_for_key('k2'), $heir, 'kill_master: its replica holds the slots');
    is(scalar($c->ports), 5, 'five nodes alive');
    is($c->cli('GET', 'k2'), '2', 'key survived a killed master');
    $c->revive($victim);
    is(scalar($c->ports), 6, 'revived: six nodes');
    is((grep { $_ == $victim } $c->replicas), 1, 'the revived node is a replica');
    $c->stop;
}

# ---- Sentinel and Cluster in TLS ----
{
    my $s = sentinel_set(tls => 1, password => 'tlsdata');
    is($s->reported_master(0), $s->master_port, 'TLS sentinel reports the master');
    ok(!defined eval { PgRedis::_cmd_at($s->master_port, ['tlsdata'], 1, 'PING') }, 'the master speaks only TLS');
    my $new = $s->failover;
    is($s->cmd('ROLE')->[0], 'master', 'TLS sentinel failover');
    $s->stop;

    my $c = cluster(tls => 1);
    is($c->cli('SET', 'foo', 'bar'), 'OK', 'TLS cluster: SET through redis-cli --tls -c');
    is($c->cmd_at($c->node_for_key('foo'), 'GET', 'foo'), 'bar', 'TLS cluster: GET on the slot\'s master');
    ok(!defined eval { PgRedis::_cmd_at(($c->masters)[0], undef, 1, 'PING') }, 'the nodes speak only TLS');
    $c->stop;
}

my $took = time - $t0;
ok($took < 90, sprintf('all topologies in %.1fs', $took));
done();
