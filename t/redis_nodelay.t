# The module's Redis connections have Nagle's algorithm off (TCP_NODELAY), as
# every Redis client does: the batches are small writes that often follow
# one another before Redis has answered the first (a settle, then the next
# request's reserve), and with Nagle on, the second would wait for the
# first's acknowledgement, one round trip of latency to a Redis across a
# network. Checked on the workers' own sockets: each worker's connection to
# Redis is taken with pidfd_getfd(2) (Linux 5.6+, as root) and asked.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use PgTest;

plan skip_all => 'pidfd_getfd needs root' if $> != 0;

use constant { SYS_pidfd_open => 434, SYS_pidfd_getfd => 438 };

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up, workers => 2);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=1s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy ip key=$remote_addr max_failures=5 window=1m lockout=1m;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            pairguard ip;
            proxy_pass http://backend;
        }
    }
}
CONF

# a few guarded requests, so that the workers have connected
for (1 .. 6) { http_get($ng->port, '/ok') }

# inode => 1 for every TCP socket connected to Redis' port
sub redis_sockets ($port) {
    my %inode;
    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open(my $fh, '<', $file) or next;
        <$fh>;
        while (my $l = <$fh>) {
            my @f = split ' ', $l;
            my ($rport) = $f[2] =~ /:([0-9A-F]{4})$/;
            $inode{ $f[9] } = 1 if defined $rport && hex($rport) == $port && $f[3] eq '01';  # ESTABLISHED
        }
    }
    return \%inode;
}

my $inodes = redis_sockets($redis->port);
my (@seen, $cannot);
for my $pid ($ng->worker_pids) {
    opendir(my $d, "/proc/$pid/fd") or next;
    for my $fd (grep { /^\d+$/ } readdir $d) {
        my $link = readlink("/proc/$pid/fd/$fd") // next;
        my ($ino) = $link =~ /^socket:\[(\d+)\]$/ or next;
        next unless $inodes->{$ino};
        my $pidfd = syscall(SYS_pidfd_open, $pid + 0, 0);
        if ($pidfd < 0) { $cannot = "pidfd_open: $!"; next }
        my $mine = syscall(SYS_pidfd_getfd, $pidfd, $fd + 0, 0);
        POSIX::close($pidfd);
        if ($mine < 0) { $cannot = "pidfd_getfd: $!"; next }
        open(my $sock, '+<&=', $mine) or die "fdopen: $!";
        my $v = getsockopt($sock, IPPROTO_TCP, TCP_NODELAY);
        push @seen, [$pid, $fd, defined $v ? unpack('i', $v) : -1];
        close $sock;
    }
}
# a kernel before 5.6, or a container without CAP_SYS_PTRACE (the workers
# run as another user): nothing to ask with
plan skip_all => "cannot take the workers' sockets here ($cannot)" if !@seen && $cannot;
ok(@seen >= 2, 'both workers have a connection to Redis (' . scalar(@seen) . ' found)');
is_deeply([grep { $_->[2] != 1 } @seen], [], 'every one has TCP_NODELAY set');

done();
