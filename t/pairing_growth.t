# Strangers cannot grow Redis without bound through the pairing endpoints:
# platform names come from configuration (`platforms=` is required by the
# endpoints), a request for any other name writes nothing, requests beyond
# the pending slots write nothing, and a listing without ?platform= runs one
# script per configured platform, whatever the platform registry holds.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

# --- configuration ----------------------------------------------------------------

sub conf ($policy, $location = 'pairguard_pairing request;') {
    return <<"CONF";
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:6399 timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    $policy
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /pair { $location }
    }
}
CONF
}

my ($rc, $out) = nginx_t(conf(''));
isnt($rc, 0, 'a pairing endpoint without pairguard_pairing_policy is refused by nginx -t');
like($out, qr/"pairguard_pairing" needs "pairguard_pairing_policy \.\.\. platforms=NAME,\.\.\."/,
    '  and the message says platforms= is needed');
($rc) = nginx_t(conf('pairguard_pairing_policy max_pending=3;'));
isnt($rc, 0, 'a pairing policy without platforms= is refused when an endpoint exists');
($rc) = nginx_t(conf('pairguard_pairing_policy max_pending=3;', 'pairguard_pairing pending;'));
isnt($rc, 0, 'admin endpoints need the list too (listings cover the configured platforms)');
($rc, $out) = nginx_t(conf('pairguard_pairing_policy platforms=telegram,telegram;'));
isnt($rc, 0, 'a platform named twice is refused');
like($out, qr/invalid parameter "platforms=telegram,telegram"/, '  with nginx\'s wording');
my $many = join ',', map { "p$_" } 1 .. 33;
($rc) = nginx_t(conf("pairguard_pairing_policy platforms=$many;"));
isnt($rc, 0, 'more than 32 platforms are refused');
($rc, $out) = nginx_t(conf('pairguard_pairing_policy platforms=telegram,whatsapp;'));
is($rc, 0, 'a policy with platforms= is accepted') or diag $out;
($rc, $out) = nginx_t(conf('', 'pairguard_require_paired platform=$http_x_platform user=$http_x_user_id; return 204;'));
is($rc, 0, 'pairguard_require_paired alone needs no platform list (it only reads)') or diag $out;

# --- what a stranger can make Redis hold ----------------------------------------------

my $redis = start_redis();
my $ng = start_nginx(<<'CONF', redis => $redis);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_pairing_policy code_ttl=1h max_pending=3 request_interval=10m platforms=telegram,whatsapp;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /pair/request { pairguard_pairing request; }
        location = /pair/pending { pairguard_pairing pending; }
        location = /pair/approved { pairguard_pairing approved; }
    }
}
CONF
my $P = $ng->port;

sub request_code ($platform, $user, $name = undef) {
    my %b = (platform => $platform, user_id => $user);
    $b{user_name} = $name if defined $name;
    return http_post_json($P, '/pair/request', \%b);
}
sub script_calls () {
    my $info = $redis->cmd('INFO', 'commandstats');
    my $n = 0;
    $n += $1 while $info =~ /^cmdstat_(?:evalsha|eval):calls=(\d+)/mg;
    return $n;
}

my $before = $redis->dbsize;
my @odd = map { request_code("invented-$_", "u$_") } 1 .. 20;
is(scalar(grep { $_->{status} == 400 } @odd), 20, 'requests for 20 invented platforms are refused with 400');
is(($odd[0]{json} // {})->{error}, 'invalid_request', '  as invalid_request');
is($redis->dbsize, $before, '  and Redis holds nothing more');

my @res = map { request_code('telegram', "stranger-$_") } 1 .. 40;
my @ok = grep { $_->{status} == 201 } @res;
is(scalar @ok, 3, 'of 40 invented users on a listed platform, max_pending (3) get codes');
is(scalar(grep { $_->{status} == 429 && $_->{json}{error} eq 'too_many_pending' } @res), 37,
    '  the other 37 are refused with too_many_pending');
my @keys = $redis->scan_keys;
my @rate = grep { /:rate:/ } @keys;
my @pending = grep { /:pending$/ } @keys;
is(scalar @rate, 3, 'Redis holds one rate marker per issued code, none for the refused');
is(scalar @pending, 1, 'one pending hash for the platform');
is($redis->cmd('HLEN', $pending[0]), 3, '  with max_pending entries');
is_deeply($redis->cmd('SMEMBERS', 'pairguard:pairing:platforms'), ['telegram'],
    'the platform registry holds only the configured name that was used');
cmp_ok($_, '>', 0, 'every key a stranger made expires') for map { $redis->cmd('PTTL', $_) } @rate, @pending;

my $size = 0;
$size += $redis->cmd('MEMORY', 'USAGE', $_) for @rate, @pending;
note("three ordinary codes with their rate markers: $size bytes of Redis memory");
my $long = request_code('whatsapp', '1' x 256, 'N' x 256);
is($long->{status}, 201, 'a request with the longest user id and name gets a code');
my $grown = 0;
$grown += $redis->cmd('MEMORY', 'USAGE', $_) for grep { /:rate:|:pending$/ } $redis->scan_keys;
$grown -= $size;
cmp_ok($grown, '<=', 1536, "  and grows Redis by at most 1.5 KiB ($grown bytes)");
my $full = $redis->dbsize;
request_code('telegram', "late-$_") for 1 .. 10;
is($redis->dbsize, $full, 'further requests on a full platform add no key');

# --- listings without ?platform= --------------------------------------------------------

# a registry filled by an older version (or by hand) does not make listings fan out
$redis->cmd('SADD', 'pairguard:pairing:platforms', map { "junk-$_" } 1 .. 500);
my $r = http_get($P, '/pair/pending');    # loads the scripts
is($r->{status}, 200, 'a listing without ?platform= answers');
my $calls = script_calls();
$r = http_get($P, '/pair/pending');
is(script_calls() - $calls, 2, 'and runs one script per configured platform (2), not one per registry name');
is(scalar @{ $r->{json}{pending} // [] }, 4, '  listing the 4 pending codes of telegram and whatsapp');
is_deeply([sort { $a cmp $b } keys %{ { map { $_->{platform} => 1 } @{ $r->{json}{pending} } } }],
    [qw(telegram whatsapp)], '  of the configured platforms only');
$r = http_get($P, '/pair/approved');    # loads its script
is($r->{status}, 200, 'the approved listing answers');
$calls = script_calls();
$r = http_get($P, '/pair/approved');
is(script_calls() - $calls, 2, '  with one script per configured platform');

$r = http_get($P, '/pair/pending?platform=junk-1');
is($r->{status}, 200, 'a named platform outside the list can still be listed by the owner');
is_deeply($r->{json}{pending}, [], '  (empty)');

done();
