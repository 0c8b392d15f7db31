package PgAuth;
# Helpers the auth tests share: pairguardctl with a password on stdin, the
# Redis keys of a user, and a scan of Redis and logs for secrets.
use 5.036;
use Exporter 'import';
use POSIX ();
use Digest::SHA qw(hmac_sha256 sha256);
use MIME::Base64 qw(encode_base64 decode_base64 encode_base64url);
use PgTest;

our @EXPORT = qw(ctl_auth user_base redis_dump secret_seen b64url unb64 auth_params haystack_login);

my $CTL = ctl_path();

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

# --- a Haystack SCRAM client (docHaystack/Auth) -------------------------------------

sub b64url ($s) { encode_base64url($s) }

sub unb64 ($s) {
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}

sub _pbkdf2 ($pw, $salt, $iter) {
    my $u = hmac_sha256($salt . "\0\0\0\1", $pw);
    my $out = $u;
    for (2 .. $iter) {
        $u = hmac_sha256($u, $pw);
        $out ^.= $u;
    }
    return $out;
}

# The auth-param list of a header (after its scheme, if any), names in lower case.
sub auth_params ($h) {
    $h =~ s/^\s*(?:SCRAM|HELLO|Bearer)\s+//i;
    my %p;
    for (split /\s*,\s*/, $h) {
        my ($k, $v) = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/ or next;
        $p{lc $k} = $v;
    }
    return \%p;
}

# The exchange against GET $path. %o: from => address, wrong_pw => password,
# stop_after => 'first' (no client-final), keep_token => 1 (send the HELLO
# token in every step, as the Haystack spec's example does; the default
# takes the token each answer names). Returns {hello, first, final
# (responses), t1, t2, server_first, salt, iterations, token}.
sub haystack_login ($port, $path, $user, $pw, %o) {
    my %s;
    my @from = $o{from} ? (from => $o{from}) : ();
    my $get = sub ($auth) { http_get($port, $path, headers => { Authorization => $auth }, @from) };
    my $r = $get->('HELLO username=' . b64url($user));
    $s{hello} = $r;
    return \%s unless $r->{status} == 401;
    $s{t1} = auth_params($r->{headers}{'www-authenticate'} // '')->{handshaketoken};
    my $cnonce = b64url(join('', map { chr int rand 256 } 1 .. 18));
    my $bare = "n=$user,r=$cnonce";
    $r = $get->("SCRAM handshakeToken=$s{t1}, data=" . b64url("n,,$bare"));
    $s{first} = $r;
    return \%s unless $r->{status} == 401;
    my $p = auth_params($r->{headers}{'www-authenticate'} // '');
    $s{t2} = $p->{handshaketoken};
    my $sf = unb64($p->{data} // '');
    $s{server_first} = $sf;
    my %f = map { /^(\w)=(.*)$/ ? ($1, $2) : () } split /,/, $sf;
    ($s{salt}, $s{iterations}) = ($f{s}, $f{i});
    return \%s if ($o{stop_after} // '') eq 'first';
    my $sp = _pbkdf2($o{wrong_pw} // $pw, decode_base64($f{s} // ''), $f{i} // 4096);
    my $ck = hmac_sha256('Client Key', $sp);
    my $without = 'c=' . encode_base64('n,,', '') . ",r=" . ($f{r} // '');
    my $proof = $ck ^. hmac_sha256("$bare,$sf,$without", sha256($ck));
    $s{final_msg} = "$without,p=" . encode_base64($proof, '');
    my $t = $o{keep_token} ? $s{t1} : $s{t2};
    $r = $get->("SCRAM handshakeToken=$t, data=" . b64url($s{final_msg}));
    $s{final} = $r;
    $s{token} = auth_params($r->{headers}{'authentication-info'} // '')->{authtoken};
    return \%s;
}

1;
