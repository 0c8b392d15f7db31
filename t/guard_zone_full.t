# pairguard_store_down local with a full zone: when the shared-memory zone
# has no room for a new key, the coldest keys that hold no lock in force go;
# a lock in force never does. A flood of fresh failing keys while Redis is
# down (each one a node that holds a failure) must not wipe a victim's lock
# and give it a fresh budget; a zone full of locks refuses a key it cannot
# count.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $up = start_upstream();
my $ng = start_nginx(<<'CONF', upstream => $up, workers => 1);
http {
    %%HTTP_COMMON%%
    # nothing listens there: the store is down from the start
    pairguard_redis 127.0.0.1:%%PORT_NOREDIS%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down local;
    pairguard_zone 32k;
    pairguard_policy acct key=$http_x_account max_failures=3 window=10m lockout=10m;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /login { pairguard acct; proxy_pass http://backend/status/401; }
    }
}
CONF
my $P = $ng->port;
sub guess ($who) { http_get($P, '/login', headers => { 'X-Account' => $who })->{status} }

is(join(' ', map { guess('victim') } 1 .. 4), '401 401 401 429', 'the victim is locked on this node (Redis down)');

# fresh accounts, one failure each, until the zone has been full for a while
my %st;
$st{ guess("flood-$_") }++ for 1 .. 600;
is($st{401} // 0, 600, 'every flooding guess was a first failure of its own key');
# the zone did fill up: the first flooding key, colder than every other but
# the victim, was dropped (its one failure forgotten: three more go through)
is(join(' ', map { guess('flood-1') } 1 .. 3), '401 401 401',
   'the zone was full: the coldest unlocked key was dropped to make room');

$up->reset;
is(guess('victim'), 429, 'the victim is still locked after the flood');
is($up->count, 0, 'and its guess did not reach the upstream');

# a zone full of locks: a lock is never dropped, a key that cannot be
# counted is refused (not let through uncounted)
my ($n, $refused) = (0, 0);
while ($n < 400 && !$refused) {
    $n++;
    my @s = map { guess("lock-$n") } 1 .. 3;
    $refused = 1 if grep { $_ == 429 } @s;
}
ok($refused, "the zone filled with locks after $n locked keys: the next key was refused");
$up->reset;
is(guess('fresh-key'), 429, 'a fresh key the node cannot count is refused with 429');
is($up->count, 0, '  before the upstream');
like($ng->error_log, qr/zone "pairguard" is full of locks, a key is refused/, '  and the error log says why');
is(guess('victim'), 429, 'the victim is still locked');

done();
