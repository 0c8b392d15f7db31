# An endpoint that answers from a Redis reply (pairing approve) in a location
# that also has a guard policy: its answers settle the guard like an
# upstream's (404 wrong code counts, the key locks), the settle is written to
# Redis after the reply callback returns (never from inside hiredis), and a
# Redis connection killed in the middle of a burst crashes nothing: every
# request is answered and no worker dies.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_pairing_policy max_failures=1000 code_max_failures=1000 platforms=telegram;
    pairguard_policy approver key=$http_x_approver max_failures=3 window=30s lockout=30s;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /pair/approve {
            pairguard approver;
            pairguard_pairing approve;
        }
    }
}
CONF
my $port = $ng->port;

sub approve ($who) {
    http($port, 'POST', '/pair/approve', json => { platform => 'telegram', code => 'ABCD2345' },
         headers => { 'X-Approver' => $who })->{status};
}

my @st = map { approve('mallory') } 1 .. 5;
is("@st", '404 404 404 429 429', 'wrong approvals answered from a Redis reply count for the guard and lock');
is(approve('alice'), 404, 'another approver is not locked');

# a burst while the module's Redis connections are killed under it
my @res;
my $killer = fork // die;
if (!$killer) {
    for (1 .. 20) {
        eval { $redis->cmd('CLIENT', 'KILL', 'TYPE', 'normal') };
        select(undef, undef, undef, 0.02);
    }
    exit 0;
}
for my $round (1 .. 5) {
    push @res, http_burst_responses([$port], 40, sub ($i) {
        { method => 'POST', path => '/pair/approve', json => { platform => 'telegram', code => 'ZZZZ2345' },
          headers => { 'X-Approver' => "burst-$round-" . ($i % 7) } }
    });
}
waitpid $killer, 0;
is(scalar(grep { $_->{timeout} || !$_->{status} } @res), 0, 'every request of a burst with Redis connections killed is answered');
unlike($ng->error_log, qr/exited on signal/, 'no worker died');
ok(wait_until(sub { approve('bob') == 404 }, timeout => 5), 'the module reconnects and answers again');
done();
