package PgTest;

# Integration-test harness for pairguard, in the spirit of nginx-tests:
# free loopback ports, a temp dir per test file, Redis / demo upstream / nginx
# started and stopped by pid, raw-socket HTTP helpers, and a final check that
# no nginx error log holds an [alert], [emerg] or [crit] line.
#
#   use FindBin;
#   use lib "$FindBin::Bin/lib";
#   use PgTest;                 # skips the file when the module is not built
#   use PgTest qw(-nomodule);   # harness self-tests with a plain nginx
#   use PgTest qw(-nonginx);    # no nginx at all (pairguardctl against Redis)
#
#   my $redis = start_redis();                   # ->cmd(...), stop, sigstop, sigcont, restart
#   my $up    = start_upstream(delay_ms => 200); # ->stats, reset, count($path), register(...)
#   my $ng    = start_nginx($http_block, redis => $redis, upstream => $up);
#   my $r     = http($ng->port, 'POST', '/x', json => {...}, from => '127.0.0.9');
#   my @codes = http_burst([$ng->port], 200, sub ($i) { {...} });
#   my ($rc, $out, $err) = run_cmd([ctl_path(), 'pending'], stdin => '', env => {...});
#   my $proc  = start_process([...], log => $file); # ->pid, alive, output, stop (by pid)
#   my $sub   = $redis->subscriber('pairguard:events'); # ->messages
#   done();                                      # instead of done_testing
#
# Placeholders in the http block: %%PORT%% (and %%PORT2%%, %%PORT_ANY%%...),
# %%REDIS_PORT%%, %%UPSTREAM_PORT%%, %%MODULE%%, %%SECRET_FILE%%, %%TESTDIR%%,
# %%DIR%% (the instance's dir), %%HTTP_COMMON%% (temp paths, access log) and
# any key of vars => {...} in upper case.
#
# Environment: PG_NGINX (nginx binary), PG_MODULE (module .so), PG_CTL
# (pairguardctl), PG_TEST_TOOL (build/cmake/pairguard_test_tool), PG_KEEP=1
# (keep the temp dir), PG_VERBOSE=1 (diag while starting things).

use 5.036;
use Exporter ();
use Test::More ();
use IO::Socket::INET;
use IO::Select;
use JSON::PP ();
use File::Temp ();
use File::Spec;
use File::Basename qw(dirname);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Errno qw(EAGAIN EWOULDBLOCK EINPROGRESS EINTR);

our @EXPORT = qw(
    start_redis start_upstream start_nginx nginx_t
    http http_get http_post_json http_post_form http_burst http_burst_responses http_send http_answer
    json_decode json_encode free_port testdir secret_file write_file read_file
    wait_until stop_process module_path nginx_binary root_dir done
    run_cmd start_process ctl_path test_tool_path redis_at traffic_during hanging_port
);

use Cwd ();
our $ROOT = Cwd::abs_path(File::Spec->rel2abs(dirname(__FILE__) . '/../..'));

my $MAIN_PID = $$;
my ($TESTDIR, $SECRET, %USED_PORTS, $DONE);
my (@NGINX, @UPSTREAMS, @REDIS, @PROCS);    # everything started, in start order
my $NGINX_SEQ = 0;
my $JSON = JSON::PP->new->canonical->allow_nonref;

sub import {
    my ($class, @args) = @_;
    my $nonginx = grep { $_ eq '-nonginx' } @args;
    my $nomodule = $nonginx || grep { $_ eq '-nomodule' } @args;
    @args = grep { $_ ne '-nomodule' && $_ ne '-nonginx' } @args;
    if (!$nomodule && !-f module_path()) {
        Test::More::plan(skip_all => 'module not built: ' . module_path());
    }
    if (!$nonginx && !-x nginx_binary()) {
        Test::More::plan(skip_all => 'nginx not found: ' . nginx_binary());
    }
    # A test interrupted by a signal still runs END, which stops what it started.
    $SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { Test::More::diag("caught signal $_[0]"); exit 1 };
    $SIG{PIPE} = 'IGNORE';
    local $Exporter::ExportLevel = 1;
    Exporter::import($class, @args);
}

sub root_dir    { $ROOT }
sub module_path { $ENV{PG_MODULE} // "$ROOT/build/ngx_http_pairguard_module.so" }
sub nginx_binary { $ENV{PG_NGINX} // '/usr/sbin/nginx' }
sub ctl_path     { $ENV{PG_CTL} // "$ROOT/build/pairguardctl" }

# The test-only tool that makes store state as the module does; by default
# the one of the build tree pairguardctl comes from.
sub test_tool_path {
    return $ENV{PG_TEST_TOOL} if $ENV{PG_TEST_TOOL};
    my $near = dirname(ctl_path()) . '/cmake/pairguard_test_tool';
    return -x $near ? $near : "$ROOT/build/cmake/pairguard_test_tool";
}

sub _note { Test::More::diag(@_) if $ENV{PG_VERBOSE} }

# ---------------------------------------------------------------------------
# files, dirs, ports

sub testdir {
    return $TESTDIR if $TESTDIR;
    $TESTDIR = File::Temp::tempdir('pgtest-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{PG_KEEP});
    # nginx workers run as an unprivileged user when the tests run as root.
    chmod 0755, $TESTDIR;
    Test::More::diag("test dir kept: $TESTDIR") if $ENV{PG_KEEP};
    return $TESTDIR;
}

sub write_file ($path, $content, $mode = undef) {
    open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
    print $fh $content;
    close $fh or die "cannot write $path: $!";
    chmod $mode, $path if defined $mode;
    return $path;
}

sub read_file ($path) {
    open(my $fh, '<:raw', $path) or return '';
    local $/;
    my $s = <$fh>;
    return $s // '';
}

# 32 random bytes, written once per test file; every nginx of the file shares it.
sub secret_file {
    return $SECRET if $SECRET;
    open(my $r, '<:raw', '/dev/urandom') or die "urandom: $!";
    read($r, my $bytes, 32) == 32 or die "short read from /dev/urandom";
    close $r;
    $SECRET = write_file(testdir() . '/pairguard.secret', $bytes, 0600);
    return $SECRET;
}

sub free_port {
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1,
        ) or die "cannot bind a loopback port: $!";
        my $port = $s->sockport;
        close $s;
        next if $USED_PORTS{$port}++;
        return $port;
    }
    die "no free port found";
}

# A loopback port whose connects never complete: a listener with a backlog
# of 0, its queue filled and never accepted, so that an nginx upstream
# connect to it waits (an attempt stays in flight). Kept for the whole test.
my @HANGING;
sub hanging_port () {
    require Socket;
    socket(my $l, Socket::PF_INET(), Socket::SOCK_STREAM(), 0) or die "socket: $!";
    bind($l, Socket::pack_sockaddr_in(0, Socket::inet_aton('127.0.0.1'))) or die "bind: $!";
    listen($l, 0) or die "listen: $!";
    my ($port) = Socket::unpack_sockaddr_in(getsockname($l));
    push @HANGING, $l,
        map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Blocking => 0) } 1 .. 6;
    return $port;
}

sub _port_open ($port, $host = '127.0.0.1') {
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub wait_until ($cond, %o) {
    my $deadline = time + ($o{timeout} // 5);
    my $step = $o{interval} // 0.05;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return undef if time > $deadline;
        sleep $step;
    }
}

# ---------------------------------------------------------------------------
# processes (started by fork/exec, stopped by pid only)

sub _spawn ($cmd, $log, $env = {}) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        _set_env($env);
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $log) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
        { no warnings 'exec'; exec { $cmd->[0] } @$cmd; }
        print STDERR "exec $cmd->[0]: $!\n";
        POSIX::_exit(127);
    }
    _note("started pid $pid: @$cmd");
    return $pid;
}

# env => {NAME => value}; an undef value removes NAME
sub _set_env ($env) {
    for my $k (keys %$env) {
        if (defined $env->{$k}) { $ENV{$k} = $env->{$k} }
        else                    { delete $ENV{$k} }
    }
}

# Runs a command to its end: (exit status, stdout, stderr). stdin => bytes
# (default: empty), env => {NAME => value or undef}, timeout => seconds (30;
# then the command is killed and the status is -1). No shell is involved.
my $RUN_SEQ = 0;
sub run_cmd ($cmd, %o) {
    my $base = testdir() . '/run-' . ++$RUN_SEQ;
    write_file("$base.in", $o{stdin} // '');
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        _set_env($o{env} // {});
        open(STDIN, '<', "$base.in") or POSIX::_exit(126);
        open(STDOUT, '>', "$base.out") or POSIX::_exit(126);
        open(STDERR, '>', "$base.err") or POSIX::_exit(126);
        { no warnings 'exec'; exec { $cmd->[0] } @$cmd; }
        print STDERR "exec $cmd->[0]: $!\n";
        POSIX::_exit(127);
    }
    my $rc;
    if (_wait_exit($pid, $o{timeout} // 30)) {
        $rc = $? >> 8;
    }
    else {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $rc = -1;
    }
    my @res = ($rc, read_file("$base.out"), read_file("$base.err"));
    unlink "$base.in", "$base.out", "$base.err";
    return @res;
}

# A steady stream of requests while something happens: a child calls
# $request->($n) (an HTTP status) until $action->() has returned and one more
# second has passed. Returns ({status => count}, first and last second a
# status other than $good was seen (undef: none), the seconds it took).
sub traffic_during ($what, $request, $action, $good = 200) {
    my $out = testdir() . "/traffic-" . ($what =~ s/\W/_/gr);
    my $stop = "$out.stop";
    my $parent = $$;
    my $child = fork() // die "fork: $!";
    if ($child == 0) {
        open(my $fh, '>', $out) or POSIX::_exit(1);
        $fh->autoflush(1);
        my ($t0, $n) = (time, 0);
        # and never outlives the test (it holds prove's pipe)
        until (-e $stop || getppid() != $parent) {
            printf $fh "%.3f %s\n", time - $t0, $request->($n++);
        }
        POSIX::_exit(0);
    }
    my $t0 = time;
    # an action that dies stops the traffic first
    if (!eval { $action->(); 1 }) {
        my $err = $@;
        write_file($stop, '');
        waitpid($child, 0);
        die $err;
    }
    sleep 1;
    write_file($stop, '');
    waitpid($child, 0);
    my (%st, $first_bad, $last_bad);
    for (split /\n/, read_file($out)) {
        my ($t, $code) = split ' ';
        $st{$code}++;
        if ($code != $good) { $first_bad //= $t; $last_bad = $t }
    }
    return (\%st, $first_bad, $last_bad, time - $t0);
}

# A long-running process, stopped by its pid (at the end at the latest):
# start_process([cmd...], log => FILE, env => {...}, stop_signal => 'TERM').
sub start_process ($cmd, %o) {
    my $p = bless {
        cmd => $cmd,
        log => $o{log} // testdir() . '/process-' . (scalar(@PROCS) + 1) . '.log',
        sig => $o{stop_signal} // 'TERM',
    }, 'PgTest::Process';
    $p->{pid} = _spawn($cmd, $p->{log}, $o{env} // {});
    push @PROCS, $p;
    return $p;
}

# true once $pid has exited (and is reaped)
sub _wait_exit ($pid, $timeout) {
    my $deadline = time + $timeout;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        return 1 if $r == $pid || $r == -1;
        return 0 if time > $deadline;
        sleep 0.02;
    }
}

sub _alive ($pid) {
    my $r = waitpid($pid, WNOHANG);
    return 0 if $r == $pid || $r == -1;
    return kill(0, $pid) ? 1 : 0;
}

# pids whose parent is $ppid (nginx workers of a master)
sub _children_of ($ppid) {
    my @kids;
    opendir(my $d, '/proc') or return;
    for my $p (grep { /^\d+$/ } readdir $d) {
        my $stat = read_file("/proc/$p/stat");
        next unless $stat =~ /\)\s+\S+\s+(\d+)/;
        push @kids, $p if $1 == $ppid;
    }
    return @kids;
}

# SIGSTOP, and wait until $pid is stopped, not just signalled (a request
# written before it stops could be read on its own); dies (the process
# continued) when it does not stop within 2 s. SIGCONT resumes it.
sub stop_process ($pid) {
    kill 'STOP', $pid;
    my $stopped = wait_until(sub { (read_file("/proc/$pid/stat") =~ /^\d+ \(.*\) (\S)/)[0] eq 'T' },
                             timeout => 2, interval => 0.01);
    return if $stopped;
    kill 'CONT', $pid;
    die "process $pid did not stop\n";
}

sub _stop_pid ($pid, $first_sig, $grace) {
    return 1 unless $pid && _alive($pid);
    kill $first_sig, $pid;
    return 1 if _wait_exit($pid, $grace);
    kill 'TERM', $pid;
    return 1 if _wait_exit($pid, 3);
    kill 'KILL', $pid;
    return _wait_exit($pid, 3);
}

# ---------------------------------------------------------------------------
# Redis

sub start_redis (%o) {
    my $r = bless {
        port => $o{port} // free_port(),
        host => $o{bind} // '127.0.0.1',  # another loopback address (127.0.0.2) on demand
        dir  => testdir() . '/redis-' . (scalar(@REDIS) + 1),
    }, 'PgTest::Redis';
    mkdir $r->{dir};
    $r->start;
    push @REDIS, $r;
    return $r;
}

# A client of a Redis that something else started (->cmd, scan_keys ...;
# stop does nothing).
sub redis_at ($port) { bless { port => $port }, 'PgTest::Redis' }

# ---------------------------------------------------------------------------
# demo upstream (demo/upstream.py)

sub start_upstream (%o) {
    my $u = bless {
        port => $o{port} // free_port(),
        opts => {%o},
        log  => testdir() . '/upstream-' . (scalar(@UPSTREAMS) + 1) . '.log',
    }, 'PgTest::Upstream';
    $u->start;
    push @UPSTREAMS, $u;
    return $u;
}

# ---------------------------------------------------------------------------
# nginx

sub _http_common ($dir) {
    return join "\n    ",
        "client_body_temp_path $dir/client_body_temp;",
        "proxy_temp_path $dir/proxy_temp;",
        "fastcgi_temp_path $dir/fastcgi_temp;",
        "uwsgi_temp_path $dir/uwsgi_temp;",
        "scgi_temp_path $dir/scgi_temp;",
        "access_log $dir/access.log;";
}

# Builds the whole nginx.conf for an instance dir; returns (text, ports).
sub _build_conf ($template, $dir, %o) {
    my %vars = (
        TESTDIR     => testdir(),
        DIR         => $dir,
        MODULE      => module_path(),
        HTTP_COMMON => _http_common($dir),
    );
    $vars{PORT} = $o{port} // free_port();
    if (my $r = $o{redis}) { $vars{REDIS_PORT} = ref $r ? $r->port : $r }
    if (my $u = $o{upstream}) { $vars{UPSTREAM_PORT} = ref $u ? $u->port : $u }
    my %extra = %{ $o{vars} // {} };
    $vars{ uc $_ } = $extra{$_} for keys %extra;

    my $text = $template;
    # Extra ports on demand: %%PORT2%%, %%PORT_ADMIN%% ...
    for my $name ($text =~ /%%(PORT\w+)%%/g) {
        $vars{$name} //= free_port();
    }
    $vars{SECRET_FILE} = secret_file() if $text =~ /%%SECRET_FILE%%/ && !exists $vars{SECRET_FILE};
    $text =~ s/%%(\w+)%%/exists $vars{$1} ? $vars{$1} : "%%$1%%"/ge;
    $text =~ s/(pairguard_redis\s+)(127\.0\.0\.1:\d+)/${1}cluster=$2/g if ($ENV{PG_REDIS_MODE} // '') eq 'cluster';
    if ($text =~ /%%(\w+)%%/) {
        die "nginx.conf template: no value for placeholder %%$1%%\n";
    }

    my $load = $o{module} // 1;
    my $head = '';
    $head .= 'load_module ' . module_path() . ";\n" if $load;
    # other modules, loaded after this one (`extra_modules => [paths]`)
    $head .= "load_module $_;\n" for @{ $o{extra_modules} // [] };
    $head .= "daemon off;\nmaster_process on;\n";
    # main-context directives (`main => 'timer_resolution 100ms;'`)
    $head .= "$o{main}\n" if defined $o{main};
    $head .= 'worker_processes ' . ($o{workers} // 2) . ";\n";
    $head .= "error_log $dir/error.log " . ($o{log_level} // 'debug') . ";\n";
    $head .= "pid $dir/nginx.pid;\n";
    $head .= "events {\n    worker_connections " . ($o{worker_connections} // 1024) . ";\n}\n\n";
    my %ports = map { $_ => $vars{$_} } grep { /^PORT/ } keys %vars;
    return ($head . $text, \%ports);
}

sub start_nginx ($template, %o) {
    my $n = ++$NGINX_SEQ;
    my $dir = testdir() . "/nginx-$n";
    mkdir $dir;
    chmod 0755, $dir;
    my ($conf, $ports) = _build_conf($template, $dir, %o);
    write_file("$dir/nginx.conf", $conf);
    my $ng = bless {
        n => $n, dir => $dir, ports => $ports, port => $ports->{PORT},
        workers => $o{workers} // 2,
    }, 'PgTest::Nginx';
    push @NGINX, $ng;
    $ng->start;
    return $ng;
}

# `nginx -t` on a conf built like start_nginx's; returns (exit code, output).
sub nginx_t ($template, %o) {
    my $n = ++$NGINX_SEQ;
    my $dir = testdir() . "/nginx-t-$n";
    mkdir $dir;
    chmod 0755, $dir;
    my ($conf) = _build_conf($template, $dir, %o);
    write_file("$dir/nginx.conf", $conf);
    my $out = "$dir/nginx-t.out";
    my $pid = _spawn([nginx_binary(), '-t', '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log"], $out);
    my $deadline = time + 20;
    my $rc;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) { $rc = $? >> 8; last }
        if (time > $deadline) { kill 'KILL', $pid; waitpid($pid, 0); $rc = -1; last }
        sleep 0.02;
    }
    return ($rc, read_file($out));
}

# ---------------------------------------------------------------------------
# HTTP over raw sockets

sub json_encode ($v) { $JSON->encode($v) }

sub json_decode ($s) {
    return undef unless defined $s && length $s;
    my $v = eval { $JSON->decode($s) };
    return $v;
}

# Request text from (method, path, %o): headers => {..} or [[name, value], ...],
# body => bytes, json => data (sets the body and Content-Type), form => {..},
# host => 'localhost', chunked => 1 (send the body with chunked encoding).
sub _build_request ($method, $path, %o) {
    my @h;
    my $hdrs = $o{headers} // {};
    if (ref $hdrs eq 'HASH') { @h = map { [$_, $hdrs->{$_}] } sort keys %$hdrs }
    else                      { @h = @$hdrs }
    my $body = $o{body};
    if (exists $o{json}) {
        $body = ref $o{json} ? json_encode($o{json}) : $o{json};
        push @h, ['Content-Type', 'application/json'] unless grep { lc $_->[0] eq 'content-type' } @h;
    }
    if (my $f = $o{form}) {
        $body = join '&', map { _urlenc($_) . '=' . _urlenc($f->{$_}) } sort keys %$f;
        push @h, ['Content-Type', 'application/x-www-form-urlencoded']
            unless grep { lc $_->[0] eq 'content-type' } @h;
    }
    utf8::encode($body) if defined $body && utf8::is_utf8($body);
    my $has = sub ($name) { grep { lc $_->[0] eq $name } @h };
    unshift @h, ['Host', $o{host} // 'localhost'] unless $has->('host');
    push @h, ['Connection', 'close'] unless $has->('connection');
    if (defined $body) {
        if ($o{chunked}) {
            push @h, ['Transfer-Encoding', 'chunked'] unless $has->('transfer-encoding');
            my $half = int(length($body) / 2);
            my @parts = grep { length } (substr($body, 0, $half), substr($body, $half));
            $body = join('', map { sprintf("%x\r\n%s\r\n", length $_, $_) } @parts) . "0\r\n\r\n";
        }
        elsif (!$has->('content-length') && !$has->('transfer-encoding')) {
            push @h, ['Content-Length', length $body];
        }
    }
    my $req = "$method $path HTTP/1.1\r\n";
    $req .= "$_->[0]: $_->[1]\r\n" for @h;
    $req .= "\r\n";
    return ($req, $body // '');
}

sub _urlenc ($s) {
    $s = "$s";
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub _parse_response ($raw) {
    my %r = (raw => $raw, status => 0, headers => {}, body => '');
    # interim answers (100 Continue) come before the real one
    1 while $raw =~ s{^HTTP/\d\.\d\s+1\d\d[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n}{};
    my $i = index($raw, "\r\n\r\n");
    return \%r if $i < 0;
    my ($head, $body) = (substr($raw, 0, $i), substr($raw, $i + 4));
    my ($line, @lines) = split /\r\n/, $head;
    ($r{status}) = $line =~ m{^HTTP/\d\.\d\s+(\d{3})};
    $r{status} //= 0;
    $r{status_line} = $line;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        push @{ $r{header_list}{$k} }, $v;
        $r{headers}{$k} = exists $r{headers}{$k} ? "$r{headers}{$k}, $v" : $v;
    }
    if (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr($body, 0, $len);
            substr($body, 0, $len + 2) = '';
        }
        $body = $out;
    }
    $r{body} = $body;
    $r{json} = json_decode($body) if ($r{headers}{'content-type'} // '') =~ /json/i;
    return \%r;
}

sub _connect ($port, %o) {
    my %args = (PeerAddr => $o{host_addr} // '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5);
    $args{LocalAddr} = $o{from} if $o{from};    # another 127.x source: another $remote_addr
    return IO::Socket::INET->new(%args);
}

sub _write_all ($s, $data, $deadline) {
    my $off = 0;
    my $sel = IO::Select->new($s);
    while ($off < length $data) {
        return 0 if time > $deadline;
        next unless $sel->can_write(0.2);
        my $w = syswrite($s, $data, length($data) - $off, $off);
        if (!defined $w) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            return 0;
        }
        $off += $w;
    }
    return 1;
}

# http($port, $method, $path, %o) -> {status, headers (lower-cased), body, json, elapsed}
# status 0 with {timeout => 1} when no complete answer came within `timeout` (10 s).
# %o: headers, body, json, form, chunked, from (source address 127.x.y.z),
#     raw (send these bytes as the whole request), split => seconds (send the
#     head, wait, then the body), timeout.
sub http ($port, $method, $path, %o) {
    my $t0 = time;
    my $deadline = $t0 + ($o{timeout} // 10);
    my $s = _connect($port, %o) or return { status => 0, error => "connect: $!", headers => {}, body => '' };
    my ($head, $body) = defined $o{raw} ? ($o{raw}, '') : _build_request($method, $path, %o);
    if ($o{split}) {
        _write_all($s, $head, $deadline);
        sleep $o{split};
        _write_all($s, $body, $deadline);
    }
    else {
        _write_all($s, $head . $body, $deadline);
    }
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $timeout = 0;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { $timeout = 1; last }
        next unless $sel->can_read($left < 0.5 ? $left : 0.5);
        my $n = sysread($s, my $buf, 65536);
        last if !$n;    # EOF or reset: keep what came
        $raw .= $buf;
    }
    close $s;
    my $r = _parse_response($raw);
    $r->{timeout} = 1 if $timeout;
    $r->{elapsed} = time - $t0;
    return $r;
}

sub http_get ($port, $path, %o) { http($port, 'GET', $path, %o) }

# A request written now, its answer read later (an attempt kept in flight,
# requests written while a worker is stopped): http_send($port, or a socket
# already open, $method, $path, %o as http()) returns the socket;
# http_answer($socket, timeout => 10) reads the answer to its end and parses
# it as http() does (status 0 with {timeout => 1} when none came in time).
sub http_send ($to, $method, $path, %o) {
    my $s = ref $to ? $to : (_connect($to, %o) or die "connect: $!");
    my ($head, $body) = _build_request($method, $path, %o);
    print $s $head, $body;
    return $s;
}
sub http_answer ($s, %o) {
    my $raw = '';
    local $SIG{ALRM} = sub { die "pgtest: no answer\n" };
    my $ok = eval { alarm($o{timeout} // 10); $raw = join '', readline($s); alarm 0; 1 };
    alarm 0;
    return { status => 0, timeout => 1, raw => $raw } unless $ok;
    return _parse_response($raw);
}
sub http_post_json ($port, $path, $data, %o) { http($port, 'POST', $path, json => $data, %o) }
sub http_post_form ($port, $path, $data, %o) { http($port, 'POST', $path, form => $data, %o) }

# Sends $n requests at once: all connections opened and all requests written
# before any answer is read. $ports is a port or an array of ports (request i
# goes to $ports->[i % @ports]); $builder->($i) returns a hash
# {method, path, headers, body, json, form, from, port} or a raw request string.
sub http_burst_responses ($ports, $n, $builder, %o) {
    my @ports = ref $ports ? @$ports : ($ports);
    my $t0 = time;
    my $deadline = $t0 + ($o{timeout} // 20);
    my @c;
    for my $i (0 .. $n - 1) {
        my $spec = $builder->($i);
        my ($port, $req, %ro) = ($ports[$i % @ports]);
        if (ref $spec) {
            my %s = %$spec;
            $port = delete $s{port} // $port;
            my $method = delete $s{method} // 'GET';
            my $path = delete $s{path} // '/';
            my ($h, $b) = _build_request($method, $path, %s);
            $req = $h . $b;
            %ro = (from => $s{from});
        }
        else { $req = $spec }
        my $s = _connect($port, %ro);
        push @c, { i => $i, sock => $s, req => $req, raw => '', error => $s ? undef : "connect: $!" };
    }
    for my $c (grep { $_->{sock} } @c) {
        $c->{error} = 'write failed' unless _write_all($c->{sock}, $c->{req}, $deadline);
    }
    my %by_fd;
    my $sel = IO::Select->new;
    for my $c (grep { $_->{sock} && !$_->{error} } @c) {
        $c->{sock}->blocking(0);
        $by_fd{ fileno $c->{sock} } = $c;
        $sel->add($c->{sock});
    }
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.5)) {
            my $c = $by_fd{ fileno $s };
            my $n = sysread($s, my $buf, 65536);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $n = 0;
            }
            if ($n == 0) {
                $c->{done_at} = time;
                $sel->remove($s);
                close $s;
                next;
            }
            $c->{raw} .= $buf;
        }
    }
    my @res;
    for my $c (@c) {
        my $r = _parse_response($c->{raw});
        $r->{error} = $c->{error} if $c->{error};
        $r->{timeout} = 1 unless $c->{done_at} || $c->{error};
        $r->{elapsed} = ($c->{done_at} // time) - $t0;
        close $c->{sock} if $c->{sock} && !$c->{done_at};
        push @res, $r;
    }
    return @res;
}

sub http_burst ($ports, $n, $builder, %o) {
    return map { $_->{status} } http_burst_responses($ports, $n, $builder, %o);
}

# ---------------------------------------------------------------------------
# the end: stop everything (nginx first), then look for alerts

sub _stop_all {
    $_->stop for reverse @PROCS;
    $_->stop for reverse @NGINX;
    $_->stop for reverse @UPSTREAMS;
    $_->stop for reverse @REDIS;
}

sub _check_alerts {
    my @bad;
    for my $ng (@NGINX) {
        my $log = $ng->error_log;
        push @bad, map { "nginx-$ng->{n}: $_" } grep { /\[(alert|emerg|crit)\]/ } split /\n/, $log;
    }
    my $ok = Test::More::ok(!@bad, 'no [alert], [emerg] or [crit] line in any error log');
    if (!$ok) {
        my @show = @bad > 20 ? (@bad[0 .. 19], '...') : @bad;
        Test::More::diag($_) for @show;
    }
    return $ok;
}

# Call instead of done_testing: stops everything, checks the error logs.
sub done {
    _stop_all();
    _check_alerts() if @NGINX;
    $DONE = 1;
    Test::More::done_testing();
}

END {
    if ($$ == $MAIN_PID && !$DONE) {
        local $?;
        _stop_all();
        my $plan = Test::More->builder->has_plan // '';
        _check_alerts() if @NGINX && $plan !~ /^\d+$/ && $plan ne 'no_plan' && Test::More->builder->current_test;
    }
}

# ===========================================================================

package PgTest::Redis;

use 5.036;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);

sub port ($self) { $self->{port} }
sub pid ($self)  { $self->{pid} }

sub start ($self) {
    my $log = "$self->{dir}/redis.log";
    # PG_REDIS_MODE=cluster: every test against a one-node Redis Cluster
    # holding all slots, through `pairguard_redis cluster=...` (Redis then
    # refuses any script that touches two slots): PG_REDIS_MODE=cluster prove -I t/lib -r t/
    my @cluster = ($ENV{PG_REDIS_MODE} // '') eq 'cluster'
        ? ('--cluster-enabled', 'yes', '--cluster-config-file', "$self->{dir}/nodes.conf") : ();
    $self->{pid} = PgTest::_spawn([
        'redis-server', '--port', $self->{port}, '--bind', $self->{host} // '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', $self->{dir}, @cluster,
    ], $log);
    $self->{stopped_sig} = 0;
    my $up = PgTest::wait_until(sub {
        die "redis-server exited: " . PgTest::read_file($log) unless PgTest::_alive($self->{pid});
        my $pong = eval { $self->cmd_timeout(0.5, 'PING') };
        return defined $pong && $pong eq 'PONG';
    }, timeout => 10);
    die "redis-server on port $self->{port} does not answer PING\n" . PgTest::read_file($log) unless $up;
    if (@cluster) {
        my $info = $self->cmd('CLUSTER', 'INFO');
        $self->cmd('CLUSTER', 'ADDSLOTSRANGE', 0, 16383) unless $info =~ /cluster_slots_assigned:16384/;
        PgTest::wait_until(sub { $self->cmd('CLUSTER', 'INFO') =~ /cluster_state:ok/ }, timeout => 10)
            or die "redis cluster on port $self->{port} not ok\n";
    }
    return $self;
}

sub stop ($self) {
    return unless $self->{pid};
    kill 'CONT', $self->{pid} if $self->{stopped_sig};
    PgTest::_stop_pid($self->{pid}, 'TERM', 5);
    $self->{pid} = undef;
    $self->{stopped_sig} = 0;
}

sub restart ($self) {
    $self->stop;
    # The old server is gone; wait until the port can be bound again.
    PgTest::wait_until(sub { !PgTest::_port_open($self->{port}) }, timeout => 5);
    return $self->start;
}

sub sigstop ($self) { kill 'STOP', $self->{pid}; $self->{stopped_sig} = 1 }
sub sigcont ($self) { kill 'CONT', $self->{pid}; $self->{stopped_sig} = 0 }

sub cmd ($self, @args) { $self->cmd_timeout(3, @args) }

# One command over a fresh connection, speaking RESP. Errors die.
sub cmd_timeout ($self, $timeout, @args) {
    my $s = IO::Socket::INET->new(PeerAddr => $self->{host} // '127.0.0.1', PeerPort => $self->{port}, Proto => 'tcp', Timeout => $timeout)
        or die "redis connect: $!\n";
    my $req = '*' . scalar(@args) . "\r\n";
    for my $a (@args) {
        my $b = "$a";
        utf8::encode($b) if utf8::is_utf8($b);
        $req .= '$' . length($b) . "\r\n$b\r\n";
    }
    my $deadline = time + $timeout;
    PgTest::_write_all($s, $req, $deadline) or die "redis write failed\n";
    my $rd = { sock => $s, buf => '', deadline => $deadline, sel => IO::Select->new($s) };
    my $reply = _read_reply($rd);
    close $s;
    return $reply;
}

sub _fill ($rd) {
    my $left = $rd->{deadline} - time;
    die "redis timeout\n" if $left <= 0;
    die "redis timeout\n" unless $rd->{sel}->can_read($left);
    my $n = sysread($rd->{sock}, my $buf, 65536);
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

# every key (SCAN, not KEYS)
sub scan_keys ($self, $match = '*') {
    my ($cursor, %seen) = (0);
    do {
        my $r = $self->cmd('SCAN', $cursor, 'MATCH', $match, 'COUNT', 1000);
        $cursor = $r->[0];
        $seen{$_} = 1 for @{ $r->[1] };
    } while ($cursor ne '0');
    return sort keys %seen;
}

# the module's keys, without the event stream
sub guard_keys ($self) { grep { !/\{events\}/ } $self->scan_keys('pairguard:*') }

# how many times Redis ran these commands (INFO commandstats: inside scripts
# too), summed: calls('evalsha'), calls('set', 'getdel')
sub calls ($self, @names) {
    my $info = $self->cmd('INFO', 'commandstats');
    my $n = 0;
    for my $name (@names) {
        $n += $1 if $info =~ /^cmdstat_\Q$name\E:calls=(\d+)/m;
    }
    return $n;
}

# The commands clients sent while $code ran (Redis' MONITOR; not those the
# scripts ran), up to a marker sent `settle` seconds (0.3) after it: a list
# of [NAME in upper case, the rest of the line].
sub monitored ($self, $code, %o) {
    my $m = IO::Socket::INET->new(PeerAddr => $self->{host} // '127.0.0.1', PeerPort => $self->{port}, Proto => 'tcp')
        or die "redis monitor: $!\n";
    print $m "MONITOR\r\n";
    my $ok = <$m>;
    $code->();
    Time::HiRes::sleep($o{settle} // 0.3);
    my $mark = "pg-mark-$$-" . int(rand(1e9));
    $self->cmd('ECHO', $mark);
    my @cmds;
    local $SIG{ALRM} = sub { die "MONITOR: no marker\n" };
    alarm 5;
    while (my $line = <$m>) {
        last if index($line, $mark) >= 0;
        next unless $line =~ /^\+[\d.]+ \[\d+ ([^\]]+)\] "(\w+)"(.*)/;
        push @cmds, [uc $2, $3] unless $1 eq 'lua';
    }
    alarm 0;
    close $m;
    return @cmds;
}

# key -> {type, ttl_ms, value (GET for strings, else undef), dump (DUMP bytes)}
sub dump_all ($self) {
    my %all;
    for my $k ($self->scan_keys) {
        my $type = $self->cmd('TYPE', $k);
        $all{$k} = {
            type   => $type,
            ttl_ms => $self->cmd('PTTL', $k),
            value  => $type eq 'string' ? $self->cmd('GET', $k) : undef,
            dump   => $self->cmd('DUMP', $k),
        };
    }
    return \%all;
}

sub flushall ($self) { $self->cmd('FLUSHALL') }
sub dbsize ($self)   { $self->cmd('DBSIZE') }

# A connection subscribed to @channels; ->messages answers what was
# published since the last call.
sub subscriber ($self, @channels) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port}, Proto => 'tcp', Timeout => 3)
        or die "redis subscribe: $!\n";
    my $req = '*' . (1 + @channels) . "\r\n\$9\r\nSUBSCRIBE\r\n"
        . join('', map { '$' . length($_) . "\r\n$_\r\n" } @channels);
    PgTest::_write_all($s, $req, time + 3) or die "redis subscribe: write failed\n";
    my $sub = bless { sock => $s, sel => IO::Select->new($s), buf => '' }, 'PgTest::Redis::Subscriber';
    $sub->messages;    # the subscription confirmations
    return $sub;
}

package PgTest::Redis::Subscriber;

use 5.036;

# Payloads of the messages that arrived until nothing came for $quiet seconds.
# (sysread: select() cannot see what a buffered read would have kept.)
sub messages ($self, $quiet = 0.3) {
    while ($self->{sel}->can_read($quiet)) {
        sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf}) or last;
    }
    1 while $self->{buf} =~ s/^\*3\r\n\$9\r\nsubscribe\r\n\$\d+\r\n[^\r]*\r\n:\d+\r\n//;
    my @ev;
    while ($self->{buf} =~ s/^\*3\r\n\$7\r\nmessage\r\n\$\d+\r\n[^\r]*\r\n\$(\d+)\r\n//) {
        push @ev, substr($self->{buf}, 0, $1);
        substr($self->{buf}, 0, $1 + 2) = '';
    }
    return @ev;
}

# ===========================================================================

package PgTest::Process;

use 5.036;

sub pid ($self)   { $self->{pid} }
sub output ($self) { PgTest::read_file($self->{log}) }
sub alive ($self) { $self->{pid} && PgTest::_alive($self->{pid}) }

sub stop ($self) {
    my $pid = $self->{pid} or return;
    PgTest::_stop_pid($pid, $self->{sig}, 10);
    $self->{pid} = undef;
}

# ===========================================================================

package PgTest::Upstream;

use 5.036;
use Time::HiRes qw(time sleep);

sub port ($self) { $self->{port} }
sub pid ($self)  { $self->{pid} }

sub start ($self) {
    my %o = %{ $self->{opts} };
    my @opts;
    push @opts, '--code-ttl', $o{code_ttl} if defined $o{code_ttl};
    push @opts, '--delay-ms', $o{delay_ms} if defined $o{delay_ms};
    push @opts, '--verbose' if $o{verbose};
    # The port was free when free_port() closed it; another test running
    # at the same time (prove -j2) may bind it before this upstream does
    # (even another demo upstream). Then an open port is someone else's: the
    # upstream is ours only when /__stats answers with this process's pid;
    # else a new port. No answer yet: it is still starting.
    for my $attempt (1 .. 3) {
        my @cmd = ('python3', "$PgTest::ROOT/demo/upstream.py", '--port', $self->{port}, '--host', '127.0.0.1', @opts);
        $self->{pid} = PgTest::_spawn(\@cmd, $self->{log});
        my $up = PgTest::wait_until(sub {
            return -1 unless PgTest::_alive($self->{pid});
            return 0 unless PgTest::_port_open($self->{port});
            my $r = PgTest::http($self->{port}, 'GET', '/__stats', timeout => 2);
            return 0 unless $r->{status};
            return ($r->{json} && ($r->{json}{pid} // 0) == $self->{pid}) ? 1 : -1;
        }, timeout => 10);
        return $self if $up && $up == 1;
        my $why = !PgTest::_alive($self->{pid}) ? "exited: " . PgTest::read_file($self->{log})
                : $up ? "port $self->{port} answered by another process" : "port $self->{port} does not accept";
        $self->stop;
        die "demo upstream $why\n" if defined $o{port} || $attempt == 3;
        print STDERR "# demo upstream $why; another port\n";
        $self->{port} = PgTest::free_port();
    }
}

sub stop ($self) {
    return unless $self->{pid};
    PgTest::_stop_pid($self->{pid}, 'TERM', 3);
    $self->{pid} = undef;
}

sub stats ($self) {
    my $r = PgTest::http($self->{port}, 'GET', '/__stats');
    return $r->{json} // die "upstream /__stats: no JSON ($r->{status})\n";
}

sub reset ($self) {
    my $r = PgTest::http($self->{port}, 'POST', '/__reset', body => '');
    die "upstream /__reset: $r->{status}\n" unless $r->{status} == 200;
}

# requests the upstream saw for a path (all paths when none is given)
sub count ($self, $path = undef) {
    my $s = $self->stats;
    return $s->{requests} unless defined $path;
    return $s->{by_path}{$path} // 0;
}

# registers a pairing code straight on the upstream: register(age => 1000, code => '123456')
sub register ($self, %o) {
    my %body;
    $body{age} = $o{age} if defined $o{age};
    $body{pairing_code} = $o{code} if defined $o{code};
    my $r = PgTest::http($self->{port}, 'POST', '/api/provision/register', json => \%body);
    die "register: $r->{status}\n" unless $r->{status} == 201;
    return $r->{json}{pairing_code};
}

# ===========================================================================

package PgTest::Nginx;

use 5.036;
use Time::HiRes qw(time sleep);

sub port ($self, $name = 'PORT') { $self->{ports}{$name} }
sub pid ($self)                  { $self->{pid} }
sub dir ($self)                  { $self->{dir} }
sub error_log ($self)            { PgTest::read_file("$self->{dir}/error.log") }
# The error log to search for a secret: without the debug lines of nginx's
# event timers, which print its monotonic clock in milliseconds (a six-digit
# number from 100 s to 16 min after boot, as on a fresh CI machine: a random
# six-digit code matched one by chance).
sub error_log_for_secrets ($self) { join '', grep { !/\[debug\] .*event timer/ } split /^/, $self->error_log }
sub access_log ($self, $name = 'access.log') { PgTest::read_file("$self->{dir}/$name") }
sub worker_pids ($self)          { $self->{pid} ? PgTest::_children_of($self->{pid}) : () }

sub start ($self) {
    my $dir = $self->{dir};
    $self->{pid} = PgTest::_spawn(
        [PgTest::nginx_binary(), '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log"],
        "$dir/stderr.log");
    my $up = PgTest::wait_until(sub {
        die "nginx exited at start:\n" . PgTest::read_file("$dir/stderr.log") . PgTest::read_file("$dir/error.log")
            unless PgTest::_alive($self->{pid});
        PgTest::_port_open($self->{port});
    }, timeout => 10);
    die "nginx on port $self->{port} does not accept\n" . PgTest::read_file("$dir/error.log") unless $up;
    # all workers up, so that the first requests do not race their start
    PgTest::wait_until(sub { $self->worker_pids >= $self->{workers} }, timeout => 5);
    return $self;
}

sub stop ($self) {
    my $pid = $self->{pid} or return;
    my @workers = $self->worker_pids;
    PgTest::_stop_pid($pid, 'QUIT', 5);
    # a master that had to be killed leaves its workers behind
    for my $w (@workers) { kill 'KILL', $w if kill 0, $w }
    $self->{pid} = undef;
}

# SIGHUP; waits until the new generation of workers runs
sub reload ($self) {
    my $count = () = $self->error_log =~ /start worker process/g;
    kill 'HUP', $self->{pid};
    PgTest::wait_until(sub {
        my $now = () = $self->error_log =~ /start worker process/g;
        $now >= $count + $self->{workers};
    }, timeout => 10) or die "nginx reload: no new workers\n";
    sleep 0.2;
}

# length of the error log now, to look only at what comes after
sub log_mark ($self) { length $self->error_log }

sub log_since ($self, $mark) { substr($self->error_log, $mark) }

1;
