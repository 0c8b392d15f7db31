package PgAuth;
# Helpers the auth tests share: pairguardctl with a password on stdin, the
# Redis keys of a user, and a scan of Redis and logs for secrets.
use 5.036;
use Exporter 'import';
use POSIX ();
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use PgTest;

our @EXPORT = qw(ctl_auth user_base redis_dump secret_seen);

my $CTL = $ENV{PG_CTL} // root_dir() . '/build/pairguardctl';

# (exit status, stdout, stderr) of pairguardctl against $redis, with $stdin
# (if defined) as its standard input.
sub ctl_auth ($redis, $stdin, @args) {
    my $dir = testdir();
    my ($in, $out, $err) = ("$dir/ctl.in", "$dir/ctl.out", "$dir/ctl.err");
    write_file($in, $stdin // '');
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', $in) or POSIX::_exit(126);
        open(STDOUT, '>', $out) or POSIX::_exit(126);
        open(STDERR, '>', $err) or POSIX::_exit(126);
        delete $ENV{$_} for qw(PAIRGUARD_REDIS PAIRGUARD_SECRET_FILE PAIRGUARD_PREFIX);
        { no warnings 'exec'; exec { $CTL } $CTL, '--redis', '127.0.0.1:' . $redis->port, '--secret-file',
              secret_file(), @args; }
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    unlink $in;
    return ($? >> 8, read_file($out), read_file($err));
}

# "pairguard:{a:UTAG}": where everything of a user lives.
sub user_base ($user) {
    my $tag = encode_base64url(substr(hmac_sha256("a\0user\0$user", read_file(secret_file())), 0, 12));
    return "pairguard:{a:$tag}";
}

# Every key and value in Redis as one text (strings, hashes, zsets, sets).
sub redis_dump ($redis) {
    my $keys = $redis->cmd('KEYS', '*');
    my $text = '';
    for my $k (@$keys) {
        my $type = $redis->cmd('TYPE', $k);
        $text .= "$k\n";
        my $v = $type eq 'string' ? [$redis->cmd('GET', $k)]
              : $type eq 'hash'   ? $redis->cmd('HGETALL', $k)
              : $type eq 'zset'   ? $redis->cmd('ZRANGE', $k, 0, -1)
              : $type eq 'set'    ? $redis->cmd('SMEMBERS', $k)
              : [];
        $text .= join("\n", map { $_ // '' } @$v) . "\n";
    }
    return $text;
}

# Where $secret shows up: Redis and the error logs of the given nginx.
sub secret_seen ($secret, $redis, @nginx) {
    my @where;
    push @where, 'redis' if index(redis_dump($redis), $secret) >= 0;
    for my $ng (@nginx) {
        push @where, 'error log' if index($ng->error_log, $secret) >= 0;
        push @where, 'access log' if index(read_file($ng->{dir} . '/access.log') // '', $secret) >= 0;
    }
    return join(', ', @where);
}

1;
