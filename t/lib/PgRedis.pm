package PgRedis;

# Real Redis topologies for the tests in t/, on free loopback ports, started
# and stopped by pid (never by name), each in its own temp dir removed when it
# stops. A test file starts one topology and shares it across its checks.
#
#   use FindBin;
#   use lib "$FindBin::Bin/lib";
#   use PgTest;                  # or PgTest qw(-nomodule)
#   use PgRedis;
#
#   my $tls = tls_redis(client_certs => 'optional');   # or 'yes' / 'no'
#   $tls->port; $tls->ca; $tls->wrong_ca; $tls->client_cert; $tls->client_key;
#   $tls->server_cert; $tls->server_key;
#   $tls->cli('SET', 'k', 'v');                 # redis-cli --tls --cacert ...: output, dies on failure
#   my ($rc, $out) = $tls->try_cli({cacert => $tls->wrong_ca}, 'PING');
#
#   my $s = sentinel_set(master_name => 'pg');   # 1 master, 1 replica, 3 sentinels (quorum 2)
#   $s->master_port; $s->replica_port; $s->sentinel_ports; $s->master_name;
#   $s->sentinel_words;                          # "sentinel=127.0.0.1:P,... master=pg"
#   $s->failover;                                # SENTINEL FAILOVER, waits for the new master
#   $s->kill_master; $s->revive;                 # SIGKILL the master (the sentinels promote), start it again
#   $s->cmd('SET', 'k', 'v');                    # on the current master (RESP, errors die)
#
#   my $c = cluster();                           # 3 masters + 3 replicas
#   $c->ports; $c->masters; $c->replicas; $c->nodes;
#   $c->node_for_slot(1234); $c->node_for_key('k'); $c->slot_of('k');
#   $c->cli('SET', 'k', 'v');                    # redis-cli -c
#   $c->cmd_at($port, 'CLUSTER', 'INFO');        # one node, RESP
#   $c->failover_replica($port);                 # CLUSTER FAILOVER on a replica, waits
#   $c->kill_master($port);                      # SIGKILL, waits until its replica is master
#   $c->revive($port);                           # start a killed node again (rejoins as replica)
#   $c->reshard($from_port, $to_port, $n);       # redis-cli --cluster reshard
#   $c->move_slot($slot, $to_port);              # one slot and its keys, by hand
#   $c->begin_migration($slot, $to_port); $c->migrate_keys($slot, @keys); $c->finish_migration($slot);
#
# Options common to the three: password => P (requirepass, or the password
# of user =>), user => U (an ACL user with every right; the default user is
# then off), keep => 1 (keep the temp dir; also PG_KEEP=1).
# sentinel_set and cluster also take tls => 1: every node (and sentinel)
# speaks only TLS (replication and cluster bus too) with a throwaway CA, in
# ->certs ({ca, wrong_ca, client_cert, client_key, ...}, as tls_redis);
# client_certs => optional|yes|no as for tls_redis. Their own commands then
# go over TLS (IO::Socket::SSL, Debian's libio-socket-ssl-perl).
# sentinel_set also: sentinel_user => SU, sentinel_password => SP (the
# sentinels' own ACL), down_after_ms (1000), failover_timeout_ms (3000).
# cluster also: node_timeout_ms (1000).
#
# Every wait is bounded and dies with what it waited for. Everything a
# topology started is stopped by its pid when the object is stopped or
# destroyed, and at the latest when the test file exits.

use 5.036;
use Exporter 'import';
use IO::Socket::INET;
use IO::Select;
use File::Temp ();
use File::Path ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Scalar::Util ();
use PgTest ();    # process and RESP helpers, no import (no skip_all from here)

our @EXPORT = qw(tls_redis sentinel_set cluster have_redis_cli);

my $MAIN_PID = $$;
my @LIVE;    # weak refs to every topology not yet stopped

sub have_redis_cli { system('sh', '-c', 'command -v redis-cli >/dev/null && command -v openssl >/dev/null') == 0 }

# ---------------------------------------------------------------------------
# shared helpers

sub _tempdir ($what, %o) {
    my $d = File::Temp::tempdir("pg$what-XXXXXX", TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $d;
    Test::More::diag("$what dir: $d (kept)") if $o{keep} || $ENV{PG_KEEP};
    return $d;
}

# a free loopback port; with bus => 1 also one 10000 above it (not used,
# since the bus port is given explicitly, but kept below the ephemeral range)
my %PAIR_GIVEN;   # ports handed out by this process: free now, but taken soon
sub _free_port_pair () {
    for (1 .. 200) {
        my $p = 20000 + int(rand(10000));
        next if $PAIR_GIVEN{$p} || $PAIR_GIVEN{ $p + 10000 } || $PAIR_GIVEN{ $p - 10000 };
        my $ok = 1;
        my @held;
        for my $q ($p, $p + 10000) {
            my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $q, Proto => 'tcp', Listen => 1, ReuseAddr => 1);
            if (!$s) { $ok = 0; last }
            push @held, $s;
        }
        close $_ for @held;
        if ($ok) {
            $PAIR_GIVEN{$p} = $PAIR_GIVEN{ $p + 10000 } = 1;
            return ($p, $p + 10000);
        }
    }
    die "PgRedis: no free pair of loopback ports found\n";
}

sub _free_port () { PgTest::free_port() }

sub _wait ($what, $timeout, $cond, $detail = undef) {
    my $deadline = time + $timeout;
    my $last_err;
    while (1) {
        my $v = eval { $cond->() };
        $last_err = $@ if $@;
        if ($v) {
            Test::More::diag(sprintf('PgRedis: %.2fs waiting for %s', $timeout - ($deadline - time), $what)) if $ENV{PG_VERBOSE};
            return $v;
        }
        die "PgRedis: timed out after ${timeout}s waiting for $what" . ($last_err ? " (last error: $last_err)" : '')
            . ($detail ? ' (last: ' . ($detail->() // '?') . ')' : '') . "\n"
            if time > $deadline;
        sleep 0.05;
    }
}

sub _write_conf ($path, @lines) {
    PgTest::write_file($path, join('', map { "$_\n" } @lines));
    return $path;
}

# Runs a command, bounded by `timeout`; returns (exit status, stdout+stderr).
sub _run ($timeout, $env, @cmd) {
    my $pid = open(my $fh, '-|') // die "PgRedis: fork: $!\n";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        open(STDIN, '<', '/dev/null');
        $ENV{$_} = $env->{$_} for keys %$env;
        { no warnings 'exec'; exec('timeout', '-k', '2', $timeout, @cmd); }
        print "exec @cmd: $!\n";
        POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    die "PgRedis: timed out after ${timeout}s: @cmd\n" if $rc == 124;
    return ($rc, $out);
}

# One command over a fresh connection, speaking RESP; error replies die
# ("redis error: ..."). $conn: undef, [user, password] / [password], or
# {auth => [...], tls => CERTS} (TLS with the test CA and client certificate).
sub _cmd_at ($port, $conn, $timeout, @args) {
    my ($auth, $tls) = ref $conn eq 'HASH' ? ($conn->{auth}, $conn->{tls}) : ($conn, undef);
    my $s;
    if ($tls) {
        require IO::Socket::SSL;
        $s = IO::Socket::SSL->new(
            PeerHost => '127.0.0.1', PeerPort => $port, Timeout => $timeout,
            SSL_ca_file => $tls->{ca}, SSL_cert_file => $tls->{client_cert}, SSL_key_file => $tls->{client_key},
            SSL_verify_mode => 1, SSL_verifycn_name => 'localhost', SSL_verifycn_scheme => 'default',
        ) or die "redis 127.0.0.1:$port: TLS connect: " . ($IO::Socket::SSL::SSL_ERROR || $!) . "\n";
    } else {
        $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => $timeout)
            or die "redis 127.0.0.1:$port: connect: $!\n";
    }
    my @cmds;
    push @cmds, ['AUTH', @$auth] if $auth && @$auth && defined $auth->[-1];
    push @cmds, [@args];
    my $req = '';
    for my $c (@cmds) {
        $req .= '*' . scalar(@$c) . "\r\n";
        for my $a (@$c) {
            my $b = "$a";
            utf8::encode($b) if utf8::is_utf8($b);
            $req .= '$' . length($b) . "\r\n$b\r\n";
        }
    }
    my $deadline = time + $timeout;
    if ($tls) {
        $s->blocking(1);
        print {$s} $req or die "redis 127.0.0.1:$port: write failed\n";
    } else {
        PgTest::_write_all($s, $req, $deadline) or die "redis 127.0.0.1:$port: write failed\n";
    }
    my $rd = { sock => $s, buf => '', deadline => $deadline, sel => IO::Select->new($s) };
    my $reply;
    $reply = _read_reply($rd) for @cmds;
    close $s;
    return $reply;
}

# RESP reading (data an SSL socket holds decrypted is not seen by select)
sub _fill ($rd) {
    my $s = $rd->{sock};
    if (!($s->can('pending') && $s->pending)) {
        my $left = $rd->{deadline} - time;
        die "redis timeout\n" if $left <= 0 || !$rd->{sel}->can_read($left);
    }
    my $n = sysread($s, my $buf, 65536);
    if (!defined $n && $s->isa('IO::Socket::SSL') && $IO::Socket::SSL::SSL_ERROR == IO::Socket::SSL::SSL_WANT_READ()) {
        return;
    }
    die "redis connection closed\n" unless $n;
    $rd->{buf} .= $buf;
}

sub _line ($rd) {
    my $i;
    _fill($rd) while ($i = index($rd->{buf}, "\r\n")) < 0;
    my $line = substr($rd->{buf}, 0, $i);
    substr($rd->{buf}, 0, $i + 2) = '';
    return $line;
}

sub _bytes ($rd, $n) {
    _fill($rd) while length($rd->{buf}) < $n + 2;
    my $s = substr($rd->{buf}, 0, $n);
    substr($rd->{buf}, 0, $n + 2) = '';
    return $s;
}

sub _read_reply ($rd) {
    my $line = _line($rd);
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $t eq '+';
    die "redis error: $rest\n" if $t eq '-';
    return 0 + $rest if $t eq ':';
    if ($t eq '$') {
        return undef if $rest < 0;
        return _bytes($rd, $rest);
    }
    if ($t eq '*') {
        return undef if $rest < 0;
        return [map { _read_reply($rd) } 1 .. $rest];
    }
    die "redis: unexpected reply line '$line'\n";
}

sub _auth_of ($o) {
    return undef unless defined $o->{password};
    return defined $o->{user} ? [$o->{user}, $o->{password}] : [$o->{password}];
}

# redis.conf lines for the data nodes' ACL (user => U gives U every right and
# turns the default user off; password alone is requirepass)
sub _acl_lines ($o) {
    return () unless defined $o->{password};
    if (defined $o->{user}) {
        return ("user default off", "user $o->{user} on >$o->{password} ~* &* +\@all",
                "masteruser $o->{user}", "masterauth $o->{password}");
    }
    return ("requirepass $o->{password}", "masterauth $o->{password}");
}

# how the topology's own commands reach a data node
sub _conn_of ($o) { $o->{certs} ? { auth => _auth_of($o), tls => $o->{certs} } : _auth_of($o) }

# redis.conf lines: the port, plain or TLS (tls => 1: TLS only, replication
# and cluster bus in TLS too; client_certs => optional|yes|no)
sub _port_lines ($o, $port, %x) {
    return ("port $port") unless $o->{certs};
    my $c = $o->{certs};
    return ('port 0', "tls-port $port", "tls-cert-file $c->{server_cert}", "tls-key-file $c->{server_key}",
            "tls-client-cert-file $c->{server_cert}", "tls-client-key-file $c->{server_key}",
            "tls-ca-cert-file $c->{ca}", 'tls-auth-clients ' . ($o->{client_certs} // 'optional'),
            'tls-replication yes', $x{cluster} ? ('tls-cluster yes') : ());
}

sub _cli_tls ($o) {
    return () unless $o->{certs};
    return ('--tls', '--cacert', $o->{certs}{ca}, '--cert', $o->{certs}{client_cert}, '--key', $o->{certs}{client_key});
}

sub _cli_env ($o) { defined $o->{password} ? { REDISCLI_AUTH => $o->{password} } : {} }
sub _cli_user ($o) { defined $o->{user} && defined $o->{password} ? ('--user', $o->{user}) : () }

# ---------------------------------------------------------------------------
# base: processes of a topology

package PgRedis::Base;

use 5.036;
use Time::HiRes qw(time sleep);

sub dir ($self) { $self->{dir} }

# starts `argv` logging to $log, remembers the pid under $name
sub _spawn ($self, $name, $argv, $log) {
    my $pid = PgTest::_spawn($argv, $log);
    $self->{pids}{$name} = $pid;
    $self->{logs}{$name} = $log;
    return $pid;
}

sub _log ($self, $name) { PgTest::read_file($self->{logs}{$name} // '') }

sub _stop_one ($self, $name, $sig = 'TERM') {
    my $pid = delete $self->{pids}{$name};
    PgTest::_stop_pid($pid, $sig, 5) if $pid;
}

sub _alive ($self, $name) { my $p = $self->{pids}{$name}; return $p && PgTest::_alive($p) }

sub _wait_ping ($self, $name, $port, $auth) {
    PgRedis::_wait("$name (127.0.0.1:$port) to answer PING", 10, sub {
        die "$name exited: " . $self->_log($name) . "\n" unless $self->_alive($name);
        my $r = PgRedis::_cmd_at($port, $auth, 0.5, 'PING');
        return defined $r && $r eq 'PONG';
    });
}

sub stop ($self) {
    return if $self->{stopped} || $$ != $self->{owner};
    $self->{stopped} = 1;
    # sentinels first (no failover while the data nodes go), then the rest
    for my $name (sort { ($b =~ /^sentinel/) <=> ($a =~ /^sentinel/) || $a cmp $b } keys %{ $self->{pids} }) {
        $self->_stop_one($name);
    }
    if ($self->{dir} && !$self->{keep} && !$ENV{PG_KEEP}) {
        File::Path::remove_tree($self->{dir});
    }
}

sub DESTROY ($self) { $self->stop }

sub _register ($self) {
    $self->{owner} = $$;
    push @LIVE, $self;
    Scalar::Util::weaken($LIVE[-1]);
}

END {
    if ($$ == $MAIN_PID) {
        local $?;
        for my $t (reverse @LIVE) { $t->stop if $t }
    }
}

# ===========================================================================
# TLS

package PgRedis;

# A test CA, a server certificate for localhost / 127.0.0.1, a client
# certificate from the same CA and an unrelated CA, made with openssl.
sub make_certs ($dir) {
    my $ossl = sub (@args) {
        my ($rc, $out) = _run(30, {}, 'openssl', @args);
        die "PgRedis: openssl @args[0..1] failed: $out\n" if $rc;
    };
    my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes');
    for my $ca ('ca', 'wrong_ca') {
        $ossl->('req', '-x509', '-new', @ec, '-keyout', "$dir/$ca.key", '-out', "$dir/$ca.crt",
                '-days', '2', '-subj', "/CN=pairguard test $ca",
                '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    }
    _write_conf("$dir/server.ext",
        'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth,clientAuth', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
    _write_conf("$dir/client.ext",
        'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=clientAuth');
    for my $c (['server', 'localhost', 'ca'], ['client', 'pairguard test client', 'ca'], ['wrong_client', 'pairguard wrong client', 'wrong_ca']) {
        my ($name, $cn, $ca) = @$c;
        my $ext = $name eq 'server' ? 'server' : 'client';
        $ossl->('req', '-new', @ec, '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr", '-subj', "/CN=$cn");
        $ossl->('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.crt", '-CAkey', "$dir/$ca.key",
                '-CAcreateserial', '-out', "$dir/$name.crt", '-days', '2', '-extfile', "$dir/$ext.ext");
    }
    chmod 0644, glob("$dir/*.key");    # nginx workers may run as another user
    return {
        ca => "$dir/ca.crt", ca_key => "$dir/ca.key", wrong_ca => "$dir/wrong_ca.crt",
        server_cert => "$dir/server.crt", server_key => "$dir/server.key",
        client_cert => "$dir/client.crt", client_key => "$dir/client.key",
        wrong_client_cert => "$dir/wrong_client.crt", wrong_client_key => "$dir/wrong_client.key",
    };
}

# client_certs => 'optional' (default), 'yes' (required) or 'no'
sub tls_redis (%o) {
    my $self = bless { %o, dir => _tempdir('tls', %o), keep => $o{keep} }, 'PgRedis::Tls';
    $self->_register;
    $self->{certs} = make_certs($self->{dir});
    $self->{port} = $o{port} // _free_port();
    my $auth_clients = $o{client_certs} // 'optional';
    die "PgRedis: client_certs must be optional, yes or no\n" unless $auth_clients =~ /^(optional|yes|no)$/;
    my $c = $self->{certs};
    my $conf = _write_conf("$self->{dir}/redis.conf",
        'port 0', "tls-port $self->{port}", 'bind 127.0.0.1', 'save ""', 'appendonly no', 'daemonize no',
        "dir $self->{dir}", "tls-cert-file $c->{server_cert}", "tls-key-file $c->{server_key}",
        "tls-ca-cert-file $c->{ca}", "tls-auth-clients $auth_clients", _acl_lines(\%o));
    $self->_spawn('redis', ['redis-server', $conf], "$self->{dir}/redis.log");
    _wait("TLS redis-server (127.0.0.1:$self->{port}) to answer PING", 10, sub {
        die "redis-server exited: " . $self->_log('redis') . "\n" unless $self->_alive('redis');
        return PgTest::_port_open($self->{port}) && $self->cli('PING') eq 'PONG';
    });
    return $self;
}

package PgRedis::Tls;

use 5.036;
our @ISA = ('PgRedis::Base');

sub port ($self)              { $self->{port} }
sub pid ($self)               { $self->{pids}{redis} }
sub certs ($self)             { $self->{certs} }
sub ca ($self)                { $self->{certs}{ca} }
sub wrong_ca ($self)          { $self->{certs}{wrong_ca} }
sub server_cert ($self)       { $self->{certs}{server_cert} }
sub server_key ($self)        { $self->{certs}{server_key} }
sub client_cert ($self)       { $self->{certs}{client_cert} }
sub client_key ($self)        { $self->{certs}{client_key} }
sub wrong_client_cert ($self) { $self->{certs}{wrong_client_cert} }
sub wrong_client_key ($self)  { $self->{certs}{wrong_client_key} }

# redis-cli over TLS. $opt: cacert (default the CA), cert/key (default the
# client certificate), no_cert => 1, insecure => 1, sni => NAME, host.
# Returns (exit status, output).
sub try_cli ($self, $opt, @args) {
    my @tls = ('--tls');
    if ($opt->{insecure}) { push @tls, '--insecure' }
    else { push @tls, '--cacert', $opt->{cacert} // $self->ca }
    push @tls, '--cert', $opt->{cert} // $self->client_cert, '--key', $opt->{key} // $self->client_key unless $opt->{no_cert};
    push @tls, '--sni', $opt->{sni} if defined $opt->{sni};
    return PgRedis::_run(10, PgRedis::_cli_env($self), 'redis-cli', @tls, '-h', $opt->{host} // '127.0.0.1',
                         '-p', $self->{port}, PgRedis::_cli_user($self), '--no-auth-warning', @args);
}

# output (trimmed) of a redis-cli command over TLS with the CA and the client
# certificate; dies when redis-cli fails
sub cli ($self, @args) {
    my ($rc, $out) = $self->try_cli({}, @args);
    die "redis-cli --tls @args failed ($rc): $out\n" if $rc;
    $out =~ s/\s+\z//;
    return $out;
}

sub stop_server ($self) { $self->_stop_one('redis') }

# ===========================================================================
# Sentinel

package PgRedis;

sub sentinel_set (%o) {
    my $self = bless { %o, dir => _tempdir('sentinel', %o), keep => $o{keep} }, 'PgRedis::Sentinel';
    $self->_register;
    $self->{name} = $o{master_name} // 'pg';
    $self->{certs} = make_certs($self->{dir}) if $o{tls};
    my $auth = _conn_of($self);
    my $down = $o{down_after_ms} // 1000;
    my $fto = $o{failover_timeout_ms} // 3000;

    # data nodes: "a" starts as master, "b" as its replica
    my %port = (a => _free_port(), b => _free_port());
    $self->{data_port} = \%port;
    for my $n ('a', 'b') {
        mkdir "$self->{dir}/$n";
        my $conf = _write_conf("$self->{dir}/$n/redis.conf",
            _port_lines($self, $port{$n}), 'bind 127.0.0.1', 'save ""', 'appendonly no', 'daemonize no',
            "dir $self->{dir}/$n", 'repl-diskless-sync yes', 'repl-diskless-sync-delay 0',
            _acl_lines(\%o), $n eq 'b' ? ("replicaof 127.0.0.1 $port{a}") : ());
        $self->_spawn("data-$n", ['redis-server', $conf], "$self->{dir}/$n/redis.log");
    }
    $self->_wait_ping("data-$_", $port{$_}, $auth) for 'a', 'b';
    $self->{master} = 'a';
    _wait("replica 127.0.0.1:$port{b} in sync with 127.0.0.1:$port{a}", 15, sub {
        _cmd_at($port{b}, $auth, 1, 'INFO', 'replication') =~ /master_link_status:up/
            && _cmd_at($port{a}, $auth, 1, 'INFO', 'replication') =~ /connected_slaves:1/;
    });

    # sentinels, each with its own config file (sentinel rewrites it)
    my @sp = map { _free_port() } 1 .. 3;
    $self->{sentinel_ports} = \@sp;
    my @s_acl;
    if (defined $o{sentinel_password}) {
        if (defined $o{sentinel_user}) {
            @s_acl = ('user default off', "user $o{sentinel_user} on >$o{sentinel_password} ~* &* +\@all",
                      "sentinel sentinel-user $o{sentinel_user}", "sentinel sentinel-pass $o{sentinel_password}");
        } else {
            @s_acl = ("requirepass $o{sentinel_password}", "sentinel sentinel-pass $o{sentinel_password}");
        }
    }
    my $bin = -x '/usr/bin/redis-sentinel' ? ['/usr/bin/redis-sentinel'] : ['redis-server'];
    for my $i (0 .. 2) {
        my $d = "$self->{dir}/sentinel-$i";
        mkdir $d;
        my $conf = _write_conf("$d/sentinel.conf",
            _port_lines($self, $sp[$i]), 'bind 127.0.0.1', 'daemonize no', "dir $d",
            "sentinel monitor $self->{name} 127.0.0.1 $port{a} 2",
            "sentinel down-after-milliseconds $self->{name} $down",
            "sentinel failover-timeout $self->{name} $fto",
            "sentinel parallel-syncs $self->{name} 1",
            (defined $o{password} ? ("sentinel auth-pass $self->{name} $o{password}") : ()),
            (defined $o{user} && defined $o{password} ? ("sentinel auth-user $self->{name} $o{user}") : ()),
            @s_acl);
        my @argv = (@$bin, $conf);
        push @argv, '--sentinel' if $bin->[0] eq 'redis-server';
        $self->_spawn("sentinel-$i", \@argv, "$d/sentinel.log");
    }
    my $sauth = $self->_sentinel_auth;
    for my $i (0 .. 2) {
        $self->_wait_ping("sentinel-$i", $sp[$i], $sauth);
    }
    # every sentinel knows the master, the replica and the two others
    for my $i (0 .. 2) {
        _wait("sentinel 127.0.0.1:$sp[$i] to see the replica and the two other sentinels", 20, sub {
            my $m = _kv(_cmd_at($sp[$i], $sauth, 1, 'SENTINEL', 'MASTER', $self->{name}));
            return $m->{'num-slaves'} >= 1 && $m->{'num-other-sentinels'} >= 2 && $m->{flags} eq 'master';
        });
    }
    return $self;
}

# a flat [k, v, k, v] reply as a hash
sub _kv ($list) { my %h = @$list; return \%h }

package PgRedis::Sentinel;

use 5.036;
use Time::HiRes qw(time sleep);
our @ISA = ('PgRedis::Base');

sub master_name ($self)    { $self->{name} }
sub sentinel_ports ($self) { @{ $self->{sentinel_ports} } }
sub master_port ($self)    { $self->{data_port}{ $self->{master} } }
sub replica_port ($self)   { my $r = $self->{master} eq 'a' ? 'b' : 'a'; ($self->{dead} // '') eq $r ? undef : $self->{data_port}{$r} }
sub data_ports ($self)     { map { $self->{data_port}{$_} } 'a', 'b' }
sub auth ($self)           { PgRedis::_conn_of($self) }
sub certs ($self)          { $self->{certs} }

sub _sentinel_auth ($self) {
    my $auth = !defined $self->{sentinel_password} ? undef
        : defined $self->{sentinel_user} ? [$self->{sentinel_user}, $self->{sentinel_password}] : [$self->{sentinel_password}];
    return $self->{certs} ? { auth => $auth, tls => $self->{certs} } : $auth;
}

# "sentinel=127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3 master=NAME"
sub sentinel_words ($self) {
    return 'sentinel=' . join(',', map { "127.0.0.1:$_" } $self->sentinel_ports) . " master=$self->{name}";
}

# on the current master / on a given port, RESP; error replies die
sub cmd ($self, @args) { PgRedis::_cmd_at($self->master_port, $self->auth, 3, @args) }
sub cmd_at ($self, $port, @args) { PgRedis::_cmd_at($port, $self->auth, 3, @args) }
sub sentinel_cmd ($self, $i, @args) { PgRedis::_cmd_at($self->{sentinel_ports}[$i], $self->_sentinel_auth, 3, @args) }

# the master port a sentinel reports
sub reported_master ($self, $i = 0) {
    my $r = $self->sentinel_cmd($i, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', $self->{name});
    return ref $r ? $r->[1] : undef;
}

# SENTINEL FAILOVER; waits until every sentinel reports the old replica as the
# master, ROLE on it says master and the old master replicates from it. A
# second failover soon after the first waits (up to 10 s) until the sentinels
# have seen the old master as a replica.
# Returns the new master's port.
sub failover ($self, %o) {
    my $old = $self->master_port;
    my $new = $self->replica_port;
    my $timeout = $o{timeout} // 30;
    # right after a failover the sentinels know the old master as a replica
    # only after their next INFO to it (up to 10 s): NOGOODSLAVE until then
    PgRedis::_wait("SENTINEL FAILOVER $self->{name} to be accepted", 30, sub {
        my $r = eval { $self->sentinel_cmd(0, 'SENTINEL', 'FAILOVER', $self->{name}) };
        return 1 if defined $r && $r eq 'OK';
        die $@ if $@ && $@ !~ /NOGOODSLAVE|INPROG/;
        return 0;
    });
    for my $i (0 .. 2) {
        PgRedis::_wait("sentinel $i to report 127.0.0.1:$new as master of $self->{name}", $timeout, sub {
            ($self->reported_master($i) // 0) == $new;
        });
    }
    PgRedis::_wait("ROLE on 127.0.0.1:$new to say master", $timeout, sub { $self->cmd_at($new, 'ROLE')->[0] eq 'master' });
    $self->{master} = $self->{master} eq 'a' ? 'b' : 'a';
    # Sentinel turns the old master into a replica only at its next INFO
    # (every 10 s); do now what it will do, so the set converges at once.
    $self->cmd_at($old, 'REPLICAOF', '127.0.0.1', $new) if $self->cmd_at($old, 'ROLE')->[0] eq 'master';
    PgRedis::_wait("old master 127.0.0.1:$old to replicate from 127.0.0.1:$new", $timeout, sub {
        my $role = $self->cmd_at($old, 'ROLE');
        return $role->[0] eq 'slave' && $role->[2] == $new && $role->[3] eq 'connected';
    });
    return $new;
}

# kills the master (SIGKILL by pid, or sig => 'TERM'); waits until the
# sentinels have promoted the replica on their own (down-after-milliseconds,
# then an election) and ROLE confirms it. Returns the new master's port;
# replica_port() is undef until revive().
sub kill_master ($self, %o) {
    my $old = $self->{master};
    my $new = $old eq 'a' ? 'b' : 'a';
    my $np = $self->{data_port}{$new};
    my $timeout = $o{timeout} // 30;
    $self->_stop_one("data-$old", $o{sig} // 'KILL');
    $self->{dead} = $old;
    for my $i (0 .. 2) {
        PgRedis::_wait("sentinel $i to report 127.0.0.1:$np as master after the master was killed", $timeout, sub {
            ($self->reported_master($i) // 0) == $np;
        });
    }
    PgRedis::_wait("ROLE on 127.0.0.1:$np to say master", $timeout, sub { $self->cmd_at($np, 'ROLE')->[0] eq 'master' });
    $self->{master} = $new;
    return $np;
}

# starts the killed master again, as a replica of the current master
sub revive ($self, %o) {
    my $n = delete $self->{dead} // die "PgRedis: no killed master to revive\n";
    my $port = $self->{data_port}{$n};
    my $mp = $self->master_port;
    $self->_spawn("data-$n", ['redis-server', "$self->{dir}/$n/redis.conf"], "$self->{dir}/$n/redis.log");
    $self->_wait_ping("data-$n", $port, $self->auth);
    # the sentinels would turn it into a replica at their next INFO (10 s)
    $self->cmd_at($port, 'REPLICAOF', '127.0.0.1', $mp) if $self->cmd_at($port, 'ROLE')->[0] eq 'master';
    PgRedis::_wait("revived 127.0.0.1:$port to replicate from 127.0.0.1:$mp", $o{timeout} // 30, sub {
        my $role = $self->cmd_at($port, 'ROLE');
        return $role->[0] eq 'slave' && $role->[2] == $mp && $role->[3] eq 'connected';
    });
    return $port;
}

# ===========================================================================
# Cluster

package PgRedis;

sub cluster (%o) {
    my $self = bless { %o, dir => _tempdir('cluster', %o), keep => $o{keep} }, 'PgRedis::Cluster';
    $self->_register;
    my $n = $o{nodes} // 6;
    my $timeout = $o{node_timeout_ms} // 1000;
    $self->{certs} = make_certs($self->{dir}) if $o{tls};
    my $auth = _conn_of($self);
    my @ports;
    for my $i (0 .. $n - 1) {
        my ($port, $bus) = _free_port_pair();
        push @ports, $port;
        my $d = "$self->{dir}/$port";
        mkdir $d;
        _write_conf("$d/redis.conf",
            _port_lines($self, $port, cluster => 1), "cluster-port $bus", 'bind 127.0.0.1', 'save ""', 'appendonly no', 'daemonize no',
            "dir $d", 'cluster-enabled yes', 'cluster-config-file nodes.conf', "cluster-node-timeout $timeout",
            'repl-diskless-sync yes', 'repl-diskless-sync-delay 0', 'cluster-replica-validity-factor 0',
            _acl_lines(\%o));
        $self->_start_node($port);
    }
    $self->{ports} = \@ports;
    $self->_wait_ping("node-$_", $_, $auth) for @ports;
    my ($rc, $out) = _run(60, _cli_env(\%o), 'redis-cli', _cli_tls($self), _cli_user(\%o), '--no-auth-warning', '--cluster', 'create',
                          (map { "127.0.0.1:$_" } @ports), '--cluster-replicas', 1, '--cluster-yes');
    die "PgRedis: redis-cli --cluster create failed ($rc): $out\n" if $rc;
    $self->wait_stable(timeout => 30);
    return $self;
}

package PgRedis::Cluster;

use 5.036;
use Time::HiRes qw(time sleep);
our @ISA = ('PgRedis::Base');

sub auth ($self) { PgRedis::_conn_of($self) }
sub certs ($self) { $self->{certs} }

sub _start_node ($self, $port) {
    my $d = "$self->{dir}/$port";
    $self->_spawn("node-$port", ['redis-server', "$d/redis.conf"], "$d/redis.log");
}

# ports of the nodes alive (started and not killed)
sub ports ($self) { grep { $self->_alive("node-$_") } @{ $self->{ports} } }
sub all_ports ($self) { @{ $self->{ports} } }

# "cluster=127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3" (the alive nodes, at most three)
sub cluster_words ($self) {
    my @p = $self->ports;
    @p = @p[0 .. 2] if @p > 3;
    return 'cluster=' . join(',', map { "127.0.0.1:$_" } @p);
}

sub cmd_at ($self, $port, @args) { PgRedis::_cmd_at($port, $self->auth, 3, @args) }

# redis-cli -c on the first alive node / on a given node; output trimmed,
# dies on failure
sub cli ($self, @args) { $self->cli_at(($self->ports)[0], @args) }

sub cli_at ($self, $port, @args) {
    my ($rc, $out) = $self->try_cli($port, @args);
    die "redis-cli -c -p $port @args failed ($rc): $out\n" if $rc;
    $out =~ s/\s+\z//;
    return $out;
}

sub try_cli ($self, $port, @args) {
    return PgRedis::_run(15, PgRedis::_cli_env($self), 'redis-cli', PgRedis::_cli_tls($self), '-c', '-h', '127.0.0.1', '-p', $port,
                         PgRedis::_cli_user($self), '--no-auth-warning', @args);
}

# CLUSTER NODES of a node: a list of {id, port, flags => {..}, master_id,
# role, slots => [[from, to], ...], fail}
sub nodes ($self, $port = undef) {
    $port //= ($self->ports)[0];
    my @out;
    for my $line (split /\n/, $self->cmd_at($port, 'CLUSTER', 'NODES')) {
        my ($id, $addr, $flags, $master, undef, undef, undef, $link, @slots) = split / /, $line;
        next unless defined $addr && $addr =~ /:(\d+)@/;
        my %f = map { $_ => 1 } split /,/, $flags;
        push @out, {
            id => $id, port => $1, flags => \%f, master_id => $master eq '-' ? undef : $master,
            role => $f{master} ? 'master' : 'replica', myself => $f{myself} ? 1 : 0,
            fail => ($f{fail} || $f{'fail?'} || $f{noaddr}) ? 1 : 0, link => $link,
            slots => [map { /^(\d+)(?:-(\d+))?$/ ? [$1, $2 // $1] : () } @slots],
        };
    }
    return @out;
}

# ports of the masters that hold slots, by their first slot
sub masters ($self) {
    my @m = grep { $_->{role} eq 'master' && !$_->{fail} && @{ $_->{slots} } } $self->nodes;
    return map { $_->{port} } sort { $a->{slots}[0][0] <=> $b->{slots}[0][0] } @m;
}

sub replicas ($self) {
    return map { $_->{port} } grep { $_->{role} eq 'replica' && !$_->{fail} } $self->nodes;
}

sub id_of ($self, $port) {
    my ($n) = grep { $_->{port} == $port } $self->nodes;
    die "PgRedis: no cluster node on port $port\n" unless $n;
    return $n->{id};
}

sub replica_of ($self, $master_port) {
    my @nodes = $self->nodes;
    my ($m) = grep { $_->{port} == $master_port } @nodes;
    die "PgRedis: no cluster node on port $master_port\n" unless $m;
    my ($r) = grep { ($_->{master_id} // '') eq $m->{id} && !$_->{fail} } @nodes;
    return $r ? $r->{port} : undef;
}

sub slot_of ($self, $key) { $self->cmd_at(($self->ports)[0], 'CLUSTER', 'KEYSLOT', $key) }

sub node_for_slot ($self, $slot) {
    for my $n ($self->nodes) {
        next unless $n->{role} eq 'master' && !$n->{fail};
        for my $r (@{ $n->{slots} }) { return $n->{port} if $slot >= $r->[0] && $slot <= $r->[1] }
    }
    return undef;
}

sub node_for_key ($self, $key) { $self->node_for_slot($self->slot_of($key)) }

# until every alive node says cluster_state:ok, knows every other alive node
# (no handshake), agrees on which nodes are masters with slots and sees
# every node in the role it says it has (a replica announced by gossip
# later than the slots is not yet one to the others), and every master with
# slots has a replica in sync (when one is alive)
# The default is long: with cluster-node-timeout 1000 a node may be marked
# PFAIL by a peer that was not scheduled for a second (a full -j2 run of the
# suite on 2 cores), and the cluster takes a while to settle again (one run
# went past 30 s after a killed master). It returns as soon as it is stable.
sub wait_stable ($self, %o) {
    my @alive = $self->ports;
    my $why;    # the condition that held it up last, for the timeout's message
    PgRedis::_wait('the cluster to be stable (cluster_state:ok, same view on every node, replicas in sync)', $o{timeout} // 60, sub {
        my $view;
        my %own = map { $_ => ($self->cmd_at($_, 'ROLE')->[0] eq 'slave' ? 'replica' : 'master') } @alive;
        for my $p (@alive) {
            ($why = "$p: cluster_state not ok"), return 0 unless $self->cmd_at($p, 'CLUSTER', 'INFO') =~ /cluster_state:ok/;
            my @nodes = $self->nodes($p);
            ($why = "$p: a node in handshake"), return 0 if grep { $_->{flags}{handshake} } @nodes;
            my %alive = map { $_ => 1 } @alive;
            ($why = "$p: sees an alive node failing"), return 0 if grep { $alive{ $_->{port} } && $_->{fail} } @nodes;
            ($why = "$p: does not know every alive node"), return 0 if (grep { $alive{ $_->{port} } } @nodes) != @alive;
            ($why = "$p: sees a node in another role than its own"), return 0
                if grep { $alive{ $_->{port} } && $_->{role} ne $own{ $_->{port} } } @nodes;
            my $v = join ' ', map { "$_->{port}:" . join(',', map { "$_->[0]-$_->[1]" } @{ $_->{slots} }) }
                sort { $a->{port} <=> $b->{port} } grep { $_->{role} eq 'master' && @{ $_->{slots} } } @nodes;
            $view //= $v;
            ($why = "$p: another view of the slots"), return 0 if $v ne $view;
        }
        for my $p (@alive) {
            my $role = $self->cmd_at($p, 'ROLE');
            ($why = "$p: replica link $role->[3]"), return 0 if $role->[0] eq 'slave' && $role->[3] ne 'connected';
        }
        return 1;
    }, sub { $why });
}

# CLUSTER FAILOVER on a replica (given a master, on its replica); waits until
# it is master everywhere and the cluster is stable. Returns its port.
sub failover_replica ($self, $port, %o) {
    my ($n) = grep { $_->{port} == $port } $self->nodes;
    die "PgRedis: no cluster node on port $port\n" unless $n;
    my $replica = $n->{role} eq 'replica' ? $port : $self->replica_of($port)
        // die "PgRedis: master 127.0.0.1:$port has no replica\n";
    my $r = $self->cmd_at($replica, 'CLUSTER', 'FAILOVER', $o{mode} ? ($o{mode}) : ());
    die "PgRedis: CLUSTER FAILOVER on 127.0.0.1:$replica: $r\n" unless $r eq 'OK';
    # as long as a promotion after a killed master may take (a loaded 2-core
    # machine: a full run of the suite once went past 20 s here)
    PgRedis::_wait("127.0.0.1:$replica to become master after CLUSTER FAILOVER", $o{timeout} // 30, sub {
        $self->cmd_at($replica, 'ROLE')->[0] eq 'master';
    });
    # the old master resyncs from its new master (a full sync under traffic
    # on a loaded machine): as long as a reshard may take
    $self->wait_stable(timeout => $o{timeout});
    return $replica;
}

# kills a master (SIGKILL by pid, or sig => 'TERM'); waits until its replica
# is master and the cluster is ok again. Returns the new master's port.
sub kill_master ($self, $port, %o) {
    my $replica = $self->replica_of($port) // die "PgRedis: master 127.0.0.1:$port has no replica\n";
    my $id = $self->id_of($port);
    $self->_stop_one("node-$port", $o{sig} // 'KILL');
    PgRedis::_wait("replica 127.0.0.1:$replica of killed master 127.0.0.1:$port to be promoted", $o{timeout} // 30, sub {
        $self->cmd_at($replica, 'ROLE')->[0] eq 'master';
    });
    PgRedis::_wait("the other nodes to mark 127.0.0.1:$port failed", $o{timeout} // 30, sub {
        for my $p ($self->ports) {
            my ($n) = grep { $_->{id} eq $id } $self->nodes($p);
            return 0 unless $n && $n->{flags}{fail};
        }
        return 1;
    });
    $self->wait_stable(timeout => $o{timeout});
    return $replica;
}

# starts a killed node again with its nodes.conf: it rejoins as a replica
sub revive ($self, $port, %o) {
    die "PgRedis: node 127.0.0.1:$port is running\n" if $self->_alive("node-$port");
    $self->_start_node($port);
    $self->_wait_ping("node-$port", $port, $self->auth);
    $self->wait_stable(timeout => $o{timeout});
    return $port;
}

# redis-cli --cluster reshard: moves N slots (redis-cli chooses which) from
# one master to another; ports or node ids
sub reshard ($self, $from, $to, $slots, %o) {
    my $fid = $from =~ /^\d+$/ ? $self->id_of($from) : $from;
    my $tid = $to =~ /^\d+$/ ? $self->id_of($to) : $to;
    my ($rc, $out) = PgRedis::_run(120, PgRedis::_cli_env($self), 'redis-cli', PgRedis::_cli_tls($self), PgRedis::_cli_user($self), '--no-auth-warning',
        '--cluster', 'reshard', '127.0.0.1:' . ($self->ports)[0], '--cluster-from', $fid, '--cluster-to', $tid,
        '--cluster-slots', $slots, '--cluster-yes', '--cluster-pipeline', 100);
    die "PgRedis: redis-cli --cluster reshard failed ($rc): $out\n" if $rc;
    $self->wait_stable(timeout => $o{timeout});
    return $out;
}

# moving one slot by hand, in steps (between them the slot answers ASK)
sub begin_migration ($self, $slot, $to) {
    my $from = $self->node_for_slot($slot) // die "PgRedis: slot $slot has no master\n";
    die "PgRedis: slot $slot is already on 127.0.0.1:$to\n" if $from == $to;
    $self->{migrating}{$slot} = [$from, $to];
    $self->cmd_at($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $self->id_of($from));
    $self->cmd_at($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $self->id_of($to));
    return $from;
}

# MIGRATE the given keys (default: every key of the slot) to the target
sub migrate_keys ($self, $slot, @keys) {
    my ($from, $to) = @{ $self->{migrating}{$slot} // die "PgRedis: slot $slot is not migrating\n" };
    my @auth = defined $self->{password}
        ? (defined $self->{user} ? ('AUTH2', $self->{user}, $self->{password}) : ('AUTH', $self->{password})) : ();
    my $all = !@keys;
    while (1) {
        @keys = @{ $self->cmd_at($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 100) } if $all;
        last unless @keys;
        $self->cmd_at($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, @auth, 'KEYS', @keys);
        last unless $all;
    }
}

sub finish_migration ($self, $slot) {
    my ($from, $to) = @{ delete $self->{migrating}{$slot} // die "PgRedis: slot $slot is not migrating\n" };
    my $tid = $self->id_of($to);
    $self->cmd_at($to, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $tid);
    $self->cmd_at($from, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $tid);
    for my $m (grep { $_ != $from && $_ != $to } $self->masters) {
        $self->cmd_at($m, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $tid);
    }
    PgRedis::_wait("every node to see slot $slot on 127.0.0.1:$to", 20, sub {
        for my $p ($self->ports) {
            for my $n ($self->nodes($p)) {
                next unless $n->{role} eq 'master';
                for my $r (@{ $n->{slots} }) {
                    return 0 if $slot >= $r->[0] && $slot <= $r->[1] && $n->{port} != $to;
                }
            }
        }
        return 1;
    });
}

sub move_slot ($self, $slot, $to) {
    $self->begin_migration($slot, $to);
    $self->migrate_keys($slot);
    $self->finish_migration($slot);
    return $to;
}

1;
