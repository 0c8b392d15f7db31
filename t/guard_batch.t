# Batching is exact. guard_batch.lua walking a sequence of reserves and
# settles gives the same answers as the single scripts called one by one
# (mixed keys, stacked policies, locks, busy keys, lock ends after expiry),
# and two nginx nodes with two workers each, batching concurrently, still let
# exactly max_failures guesses through while sending fewer script calls than
# operations.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use PgTest;

my $lua = root_dir() . '/src/lua';
sub script ($name) {
    my $text = read_file("$lua/$name.lua");
    $text =~ s/^-- \@include (\S+)\s*$/read_file("$lua\/$1")/gme;
    return $text;
}
my %src = map { $_ => script($_) } qw(guard_reserve guard_settle guard_batch);
# The single scripts with their fast paths turned off: every key read with
# GET and written back whole, as without them. The fast paths (one command a
# key that holds nothing, or only the request's own reservation) must decide
# and leave exactly what the slow path does.
my %slow = map { $_ => $src{$_} } qw(guard_reserve guard_settle);
sub turn_off ($name, $from, $to) {
    my $n = ($slow{$name} =~ s/\Q$from\E/$to/g);
    die "guard_batch.t: '$from' occurs $n times in $name, not once\n" unless $n == 1;
}
turn_off('guard_reserve', q{if not redis.call('SET', KEYS[kb + i], value, 'NX'}, q{if true or not redis.call('SET', KEYS[kb + i], value, 'NX'});
turn_off('guard_settle', q{local mine = rtext ~= '0' and}, q{local mine = false and});

my $single = start_redis();
my $batch  = start_redis();
my $slowr  = start_redis();

# limits: max_failures window lockout backoff*1000 max_lockout
# (windows differ: each limit set's compact value and expiry are its own)
my @A = ('{t}:A', 3, 60000, 400, 1000, 0);
my @B = ('{t}:B', 2, 30000, 400, 1000, 0);
my @C = ('{t}:C', 5, 45000, 400, 1000, 0);
# twelve keys with twelve limit sets: set numbers of two digits
my @D = map { ["{t}:D$_", 2 + $_ % 3, 1000 * (20 + $_), 400, 1000, 0] } 1 .. 12;
# stacked policies on fresh keys (E, F, G, H), one that locks at its first
# failure (J), one whose window is not whole seconds (K: no compact form)
my @E = ('{t}:E', 3, 60000, 400, 1000, 0);
my @F = ('{t}:F', 2, 30000, 400, 1000, 0);
my @G = ('{t}:G', 4, 40000, 400, 1000, 0);
my @H = ('{t}:H', 3, 50000, 400, 1000, 0);
my @J = ('{t}:J', 1, 60000, 400, 1000, 0);
my @K = ('{t}:K', 3, 1500, 400, 1000, 0);
my ($M1, $M2, $N1, $N2, $P1) = map { ["{t}:$_", 3, 60000, 400, 1000, 0] } qw(M1 M2 N1 N2 P1);

# One step: ['r', [keys...]] or ['s', step_index, outcome, [keys...]]
my @steps = (
    [['r', [\@A]], ['r', [\@A, \@B]], ['r', [\@C]]],
    [['s', 0, 'f', [\@A]], ['s', 1, 'f', [\@A, \@B]], ['s', 2, 's', [\@C]]],
    [['r', [\@B]], ['r', [\@A]], ['r', [\@A]]],
    [['s', 6, 'f', [\@B]], ['s', 7, 'f', [\@A]], ['s', 8, 'n', [\@A]]],
    [['r', [\@A, \@B, \@C]], ['r', [\@C]], ['r', [\@C]], ['r', [\@C]], ['r', [\@C]], ['r', [\@C]], ['r', [\@C]]],
    [['s', 10, 's', [\@C]], ['s', 11, 'f', [\@C]], ['s', 12, 'f', [\@C]]],
    'sleep',
    [['r', [\@A]], ['r', [\@B]], ['r', [\@C, \@A]]],
    [map { ['r', [$_]] } @D],
    [map { ['s', 25 + $_, 'f', [$D[$_]]] } 0 .. $#D],
    [(map { ['r', [$_]] } @D[0 .. 5]), ['s', 22, 'f', [\@A]], ['s', 23, 'f', [\@B]]],
);
# stacked keys that hold nothing (one command each), and mixed with keys
# that hold something (the keys written first are taken back)
my $stacked_from = 0;    # the first operation of the stacked steps
{
    my $n = 0;
    $n += ref $_ ? scalar(@$_) : 0 for @steps;
    $stacked_from = $n;
    push @steps,
        [['r', [\@E, \@F]], ['r', [\@G, \@A]], ['r', [\@H, \@J, \@K]], ['r', [\@C, \@E]]],
        [['s', $n, 'f', [\@E, \@F]], ['s', $n + 1, 's', [\@G, \@A]], ['s', $n + 2, 'f', [\@H, \@J, \@K]],
         ['s', $n + 3, 'n', [\@C, \@E]]],
        [['r', [\@E, \@F]], ['r', [\@G, \@H]], ['r', [\@F, \@G]], ['r', [\@J, \@K]]],
        [['s', $n + 8, 's', [\@E, \@F]], ['s', $n + 9, 'n', [\@G, \@H]], ['s', $n + 10, 'f', [\@F, \@G]],
         ['s', $n + 11, 'f', [\@J, \@K]]],
        [['r', [\@F, \@G, \@H]], ['r', [\@E, \@G]]],
        [['s', $n + 16, 'f', [\@F, \@G, \@H]], ['s', $n + 17, 'f', [\@E, \@G]]],
        # left unsettled: two fresh keys refused by a locked third (taken
        # back), two fresh keys, a fresh key stacked on a key with a failure
        [['r', [$M1, $M2, \@F]], ['r', [$N1, $N2]], ['r', [$P1, \@E]]];
}
# reserves alone in their batch (every request at low concurrency), which
# guard_batch.lua answers before its definitions when the keys hold nothing:
# a fresh key; a fresh key stacked on one with a history (the fresh one
# written, then taken back for the walk); a key with a history; then the
# fresh key's failure, and a reserve of it alone again (a compact value);
# a fresh key stacked on a locked one (refused: nothing of it is left)
my ($L1, $L2, $L3) = map { ["{t}:0$_", 3, 60000, 400, 1000, 0] } qw(L1 L2 L3);
{
    my $n = 0;
    $n += ref $_ ? scalar(@$_) : 0 for @steps;
    push @steps, [['r', [$L1]]], [['r', [$L2, \@A]]], [['r', [\@A]]], [['s', $n, 'f', [$L1]]], [['r', [$L1]]],
        [['r', [$L3, \@F]]];
}

# settles alone in their batch (every answer at low concurrency), which
# guard_batch.lua also answers before its definitions when every key holds
# nothing but its request's own reservation: a success; a failure (compact);
# three at once (success, failure, neutral); one such key with one that has
# a history (nothing written early: the walk decides both); a failure that
# locks (max_failures 1) or whose window is not whole seconds (the walk); the
# same settle twice in one batch (a failure counted twice, a success once);
# two stacked keys; five settles; a dry run's failure (no reservation)
my @Q = map { ["{t}:CQ$_", 3, 60000, 400, 1000, 0] } 1 .. 17;
my $QJ = ['{t}:CQJ', 1, 60000, 400, 1000, 0];
my $QK = ['{t}:CQK', 3, 10500, 400, 1000, 0];
{
    my $n = 0;
    $n += ref $_ ? scalar(@$_) : 0 for @steps;
    my @r = ((map { [['r', [$Q[$_]]]] } 0 .. 5), [['r', [$QJ]]], [['r', [$QK]]], [['r', [$Q[6]]]], [['r', [$Q[7]]]],
             [['r', [$Q[8], $Q[9]]]], map { [['r', [$Q[$_]]]] } 10 .. 14);
    my $b = $n;        # the reserves' operation numbers: $b + 0 ...
    $n += @r;
    push @steps, @r,
        [['s', $b + 0, 's', [$Q[0]]]],
        [['s', $b + 1, 'f', [$Q[1]]]],
        [['s', $b + 2, 's', [$Q[2]]], ['s', $b + 3, 'f', [$Q[3]]], ['s', $b + 4, 'n', [$Q[4]]]],
        [['s', $b + 5, 's', [$Q[5]]], ['s', $b + 1, 'f', [$Q[1]]]],
        [['s', $b + 6, 'f', [$QJ]]],
        [['s', $b + 7, 'f', [$QK]]],
        [['s', $b + 8, 'f', [$Q[6]]], ['s', $b + 8, 'f', [$Q[6]]]],
        [['s', $b + 9, 's', [$Q[7]]], ['s', $b + 9, 's', [$Q[7]]]],
        [['s', $b + 10, 'f', [$Q[8], $Q[9]]]],
        [map { ['s', $b + $_, 'f', [$Q[$_ - 1]]] } 11 .. 15],
        [['s', $n, 'f', [$Q[15]]]];
}

sub limits_of (@keys) { map { @$_[1 .. 5] } @keys }

my (@single_out, @batch_out, @slow_out, @res_single, @res_batch, @res_slow);
my $idx = 0;
for my $group (@steps) {
    if (!ref $group) { sleep 0.5; next }
    # the single scripts, one call per operation
    for my $op (@$group) {
        my ($kind, @rest) = @$op;
        my $keys = $kind eq 'r' ? $rest[0] : $rest[2];
        my @k = map { $_->[0] } @$keys;
        my $r = $kind eq 'r'
            ? $single->cmd('EVAL', $src{guard_reserve}, scalar(@k), @k, 60000, limits_of(@$keys))
            : $single->cmd('EVAL', $src{guard_settle}, scalar(@k), @k, $rest[1], $res_single[$rest[0]] // 0, limits_of(@$keys));
        push @single_out, $r;
        push @res_single, $kind eq 'r' ? $r->[3] : undef;
        my $w = $kind eq 'r'
            ? $slowr->cmd('EVAL', $slow{guard_reserve}, scalar(@k), @k, 60000, limits_of(@$keys))
            : $slowr->cmd('EVAL', $slow{guard_settle}, scalar(@k), @k, $rest[1], $res_slow[$rest[0]] // 0, limits_of(@$keys));
        push @slow_out, $w;
        push @res_slow, $kind eq 'r' ? $w->[3] : undef;
    }
    # the same operations as one batch: each distinct limits list once (its
    # length and values), each operation naming its list by number
    my (@bk, @ba, @sets, %set_no);
    for my $op (@$group) {
        my ($kind, @rest) = @$op;
        my $keys = $kind eq 'r' ? $rest[0] : $rest[2];
        push @bk, map { $_->[0] } @$keys;
        my @lim = limits_of(@$keys);
        if (!exists $set_no{"@lim"}) {
            push @sets, scalar(@lim), @lim;
            $set_no{"@lim"} = scalar(keys %set_no) + 1;
        }
        my $no = $set_no{"@lim"};
        push @ba, $kind eq 'r' ? ('r', scalar(@$keys), $no)
                               : ('s', scalar(@$keys), $rest[1], $res_batch[$rest[0]] // 0, $no);
    }
    # one string: the operations' integers, ' ' within an operation, ','
    # between operations
    my $text = $batch->cmd('EVAL', $src{guard_batch}, scalar(@bk), @bk, 60000, scalar(keys %set_no), @sets, @ba);
    like($text, qr/\A(?:-?\d+(?: -?\d+)*)?(?:,(?:-?\d+(?: -?\d+)*)?)*\z/, 'a batch answers in decimal integers');
    my @ops = split /,/, $text, -1;
    @ops = ('') if !@ops;  # one operation with an empty answer
    my $replies = [map { [split / /, $_] } @ops];
    is(scalar(@$replies), scalar(@$group), 'a batch answers once per operation');
    for my $i (0 .. $#$group) {
        push @batch_out, $replies->[$i];
        push @res_batch, $group->[$i][0] eq 'r' ? $replies->[$i][3] : undef;
    }
    $idx += @$group;
}

# reservation times and lock lengths come from each Redis' own clock: compare
# what they decide
sub shape ($r, $kind) {
    return 'settle:' . join(',', map { $_ % 2 ? 'lock' : $r->[$_] } 0 .. $#$r) if $kind eq 's';
    my @r = @$r;
    return "reserve:status=$r[0],policy=$r[1],retry=" . ($r[2] > 0 ? 'yes' : 'no') . ',reserved=' . ($r[3] > 0 ? 'yes' : 'no')
         . ',ended=' . join(',', @r[4 .. $#r]);
}
my @kinds = map { ref $_ ? map { $_->[0] } @$_ : () } @steps;
my @s = map { shape($single_out[$_], $kinds[$_]) } 0 .. $#kinds;
my @b = map { shape($batch_out[$_], $kinds[$_]) } 0 .. $#kinds;
is_deeply(\@b, \@s, 'the batch decides every operation as the single scripts do');
my @w = map { shape($slow_out[$_], $kinds[$_]) } 0 .. $#kinds;
is_deeply(\@s, \@w, 'the fast paths decide every operation as the slow path does');
like(join(' ', @s), qr/status=1/, '  the sequence includes a locked key');
like(join(' ', @s), qr/status=2/, '  and a busy key');
like(join(' ', @s), qr/ended=\d/, '  and a lock that ran out');
like(join(' ', @s), qr/settle:\d+,lock/, '  and a settle that locks');
like(join(" ", @s[$stacked_from .. $#s]), qr/settle:2,lock/, '  and one that locks the second of stacked keys');
# and the same keys and values: compact ones alike, long ones of the same
# shape (their times are each Redis' own), expiring at the same time give or
# take the moments between the runs
sub stored ($rd) {
    my (@v, %at);
    for my $k (sort $rd->scan_keys('*')) {
        next if $rd->cmd('TYPE', $k) ne 'string';  # the events stream
        my $shape = sub ($v) { $v =~ /\|/ ? join('|', map { scalar(split /,/, $_) } split /\|/, $v, -1) : $v };
        push @v, "$k=" . $shape->($rd->cmd('GET', $k) // '');
        $at{$k} = $rd->cmd('PEXPIRETIME', $k);
    }
    return (\@v, \%at);
}
sub late ($x, $y) { [map { abs($x->{$_} - ($y->{$_} // 0)) > 3000 ? "$_ expires $x->{$_} / " . ($y->{$_} // '-') : () } sort keys %$x] }
my ($vs, $ats) = stored($single);
for ([$batch, 'the batch'], [$slowr, 'the slow path']) {
    my ($rd, $who) = @$_;
    is_deeply([sort $rd->scan_keys('*')], [sort $single->scan_keys('*')], "$who leaves the same keys in Redis");
    my ($v, $at) = stored($rd);
    is_deeply($v, $vs, "  and the same values");
    is_deeply(late($at, $ats), [], '  expiring at the same times');
}
like(join(' ', @$vs), qr/\A\{t\}:0L1=0\|0\|0\|1\|1 \{t\}:0L2=0\|0\|0\|1\|0 \{t\}:A=/,
     'keys reserved alone: one failed and reserved again (a failure and a reservation), one stacked on a key'
     . ' with a history (reserved), none left of one stacked on a locked key');
like(join(' ', @$vs), qr/ \{t\}:CQ10=60 \{t\}:CQ11=60 \{t\}:CQ12=60 \{t\}:CQ13=60 \{t\}:CQ14=60 \{t\}:CQ15=60 \{t\}:CQ16=60 \{t\}:CQ2=0\|0\|0\|0\|2 \{t\}:CQ4=60 \{t\}:CQ7=0\|0\|0\|0\|2 \{t\}:CQ9=60 \{t\}:CQJ=1\|1\|1\|0\|0 \{t\}:CQK=0\|0\|0\|0\|1 /,
     'settles alone: successes leave nothing, failures compact, a repeated failure and one after a compact one long, a lock');
like(join(' ', @$vs), qr/\{t\}:D10=30 \{t\}:D11=31 \{t\}:D12=32 .*\{t\}:D7=27 /, 'compact values of different windows among them');
# (K's window is 1.5 s: its second failure may come after the first left it;
# M1 and M2, refused with the locked F, are gone)
like(join(' ', @$vs), qr/\{t\}:E=0\|0\|0\|1\|1 \{t\}:F=1\|1\|1\|0\|0 \{t\}:G=0\|0\|0\|0\|3 \{t\}:H=0\|0\|0\|0\|2 \{t\}:J=1\|1\|1\|0\|0 \{t\}:K=0\|0\|0\|0\|[12] \{t\}:N1=0\|0\|0\|1\|0 \{t\}:N2=0\|0\|0\|1\|0 \{t\}:P1=0\|0\|0\|1\|0\z/,
    '  and stacked keys: locked, long, reserved, none left by a refusal');

# 'R': a part of a request split over Redis Cluster slots reserves the value
# chosen for the whole request, kept only within [hold/2, 2 hold] of Redis'
# clock; a bad set number or limit fails the whole call
{
    my $rc = start_redis();
    my ($sec, $usec) = @{ $rc->cmd('TIME') };
    my $now = $sec * 1000 + int($usec / 1000);
    my @set = (1, 5, 3, 60000, 400, 1000, 0);
    my $fixed = $now + 61000;
    my $text = $rc->cmd('EVAL', $src{guard_batch}, 2, '{r}:X', '{r}:Y', 60000, @set,
                        'R', 1, $fixed, 1, 'R', 1, $now + 10, 1);
    my ($x, $y) = split /,/, $text;
    is($x, "0 0 0 $fixed", "'R' reserves the value it was given");
    my @y = split / /, $y;
    ok($y[0] == 0 && $y[3] >= $now + 60000 && $y[3] < $now + 65000, "  and Redis' own one when that is too close to now ($y)");
    is($rc->cmd('GET', '{r}:X'), "|||$fixed|", '  stored as the fast path stores it');
    is($rc->cmd('PEXPIRETIME', '{r}:X'), $fixed, '  living until that value (after now + hold), as store() keeps a reservation');
    my $two = $rc->cmd('EVAL', $src{guard_batch}, 2, '{r}:V', '{r}:W', 60000, 1, 10, 3, 60000, 400, 1000, 0, 3, 60000, 400, 1000, 0,
                       'R', 2, $fixed, 1);
    is($two, "0 0 0 $fixed", "'R' on two fresh keys reserves that value");
    is_deeply([map { $rc->cmd('PEXPIRETIME', $_) } '{r}:V', '{r}:W'], [$fixed, $fixed], '  on both, until that value');
    is($rc->cmd('EVAL', $src{guard_batch}, 1, '{r}:X', 60000, @set, 's', 1, 's', $fixed, 1), '', 'its settle answers nothing');
    is($rc->cmd('EXISTS', '{r}:X'), 0, '  and a success leaves nothing');
    my $err = eval { $rc->cmd('EVAL', $src{guard_batch}, 1, '{r}:Z', 60000, @set, 'r', 1, 2); 1 } ? '' : $@;
    like($err, qr/no such limit set/, 'an unknown set number fails the call');
    $err = eval { $rc->cmd('EVAL', $src{guard_batch}, 1, '{r}:Z', 60000, 1, 5, 3, 'x', 400, 1000, 0, 'r', 1, 1); 1 } ? '' : $@;
    like($err, qr/limit is not a number/, 'so does a limit that is not a number');
    is($rc->cmd('EXISTS', '{r}:Z'), 0, '  and neither wrote anything');
}

# A key holding one failure and nothing else is compact: its value is the
# window it was stored under, in seconds (one of Redis' shared integers), and
# it expires at failure + window (PXAT), so that the failure's time is exact
# however the window changes later.
{
    my $rc = start_redis();
    my $W = 2000;
    my @K = ('{c}:K', 2, $W, 60000, 1000, 0);
    my $res = sub ($hold, @keys) { $rc->cmd('EVAL', $src{guard_reserve}, scalar(@keys), (map { $_->[0] } @keys), $hold, limits_of(@keys)) };
    my $set = sub ($out, $rv, @keys) { $rc->cmd('EVAL', $src{guard_settle}, scalar(@keys), (map { $_->[0] } @keys), $out, $rv, limits_of(@keys)) };
    my $guess = sub (@keys) { $set->('f', $res->(60000, @keys)->[3], @keys) };
    my $now = sub () { my ($sec, $usec) = @{ $rc->cmd('TIME') }; $sec * 1000 + int($usec / 1000) };
    # a failure's time is its settle's: between the reserve's time and the
    # Redis time read right after the settle
    my $within = sub ($x, $lo, $hi) { $x >= $lo && $x <= $hi };
    my $r1 = $res->(60000, \@K);
    my $t0 = $r1->[3] - 60000;    # Redis' time of that request
    $set->('f', $r1->[3], \@K);
    my $t1 = $now->();
    is($rc->cmd('GET', '{c}:K'), '2', 'one failure alone: the compact value, its window in seconds');
    my $at = $rc->cmd('PEXPIRETIME', '{c}:K');
    ok($within->($at, $t0 + $W, $t1 + $W), "  expiring one window after the failure (at t0 + " . ($at - $t0) . ' ms)');
    is($rc->cmd('OBJECT', 'ENCODING', '{c}:K'), 'int', '  kept by Redis as an integer');
    sleep 0.6;
    my $r2 = $res->(60000, \@K);
    is($r2->[0], 0, 'a reserve on it is allowed (1 failure of 2)');
    my $long = $rc->cmd('GET', '{c}:K');
    like($long, qr/^\|\|\|\w+\|(\w+)$/, '  the reservation turns it into the long form');
    my ($f36) = $long =~ /\|(\w+)$/;
    my $f = 1577836800000 + do { my $x = 0; $x = $x * 36 + index('0123456789abcdefghijklmnopqrstuvwxyz', $_) for split //, $f36; $x };
    ok($within->($f, $t0, $t1), 'the failure keeps its own time in the long form (' . ($f - $t0) . ' ms after the reserve)');
    $set->('n', $r2->[3], \@K);
    is($rc->cmd('GET', '{c}:K'), '2', 'a neutral answer leaves the one failure: compact again');
    $at = $rc->cmd('PEXPIRETIME', '{c}:K');
    ok($within->($at, $t0 + $W, $t1 + $W), '  with the first failure\'s expiry kept, not renewed');
    $guess->(\@K);
    my $v = $rc->cmd('GET', '{c}:K');
    like($v, qr/^\w+\|1\|\w+\|\|$/, "the second failure locks (max 2) from the compact one ($v)");
    $rc->cmd('DEL', '{c}:K');

    # failure at t0, then another at t0+1.2 s: at t0+2.2 s the first is out
    # of the window (2 s) and only one counts
    my @M = ('{c}:M', 3, $W, 60000, 1000, 0);
    $guess->(\@M);
    sleep 1.2;
    $guess->(\@M);
    sleep 1.0;
    $guess->(\@M);
    my $m = $rc->cmd('GET', '{c}:M');
    like($m, qr/^\|\|\|\|\w+,\w+$/, "a failure read from the compact form leaves the window on time: two failures, no lock ($m)");

    # a failure stored under a 2 s window, read under a 60 s one (a reload):
    # it keeps its time and counts for the new window
    my @A2 = ('{c}:A', 3, 2000, 60000, 1000, 0);
    my @A60 = ('{c}:A', 3, 60000, 60000, 1000, 0);
    my $ra = $res->(60000, \@A2);
    $set->('f', $ra->[3], \@A2);
    my $ta = $ra->[3] - 60000;
    my $ta1 = $now->();
    $guess->(\@A60);
    my $a = $rc->cmd('GET', '{c}:A');
    my ($fa) = $a =~ /^\|\|\|\|(\w+),/;
    my $fat = 1577836800000 + do { my $x = 0; $x = $x * 36 + index('0123456789abcdefghijklmnopqrstuvwxyz', $_) for split //, ($fa // '0'); $x };
    ok($within->($fat, $ta, $ta1), 'a window changed by a reload: the compact failure keeps its own time (' . ($fat - $ta) . ' ms after the reserve)');
    ok($rc->cmd('PTTL', '{c}:A') > 55000, '  and the key lives for the new window');

    # a window that is not whole seconds keeps the long form
    my @L = ('{c}:L', 3, 1500, 60000, 1000, 0);
    $guess->(\@L);
    like($rc->cmd('GET', '{c}:L'), qr/^\|\|\|\|\w+$/, 'a window of 1.5 s: the long form');

    # without its expiry (PERSIST by hand) the failure still counts
    my @P = ('{c}:P', 2, $W, 60000, 1000, 0);
    $guess->(\@P);
    $rc->cmd('PERSIST', '{c}:P');
    my $locked = $guess->(\@P);
    is($locked->[0], 1, 'a compact key without an expiry still holds its failure: the next one locks');

    # the settle of a reservation that expired meanwhile reads the compact
    # value with GETDEL (the expiry gone with the key): the failure counts as
    # recent
    my @N = ('{c}:N', 5, 10000, 60000, 1000, 0);
    $guess->(\@N);
    my $late = $res->(200, \@N);
    sleep 0.3;
    $set->('n', $res->(60000, \@N)->[3], \@N);
    is($rc->cmd('GET', '{c}:N'), '10', 'an expired reservation is dropped, the failure compact');
    $set->('f', $late->[3], \@N);
    my $n = $rc->cmd('GET', '{c}:N');
    like($n, qr/^\|\|\|\|\w+,\w+$/, "the late settle adds its failure to the one read by GETDEL ($n)");
    ok($rc->cmd('PTTL', '{c}:N') > 9000, '  and the key lives one window from now');
    # a failure's settle reads and writes its key in one command (SET ...
    # XX GET): on a key holding only its own reservation nothing else runs
    my @S = ('{c}:S', 3, 60000, 60000, 1000, 0);
    my $rs = $res->(60000, \@S);
    $rc->cmd('CONFIG', 'RESETSTAT');
    $set->('f', $rs->[3], \@S);
    my %calls = $rc->cmd('INFO', 'commandstats') =~ /^cmdstat_(\w+):calls=(\d+)/mg;
    delete @calls{qw(eval evalsha time config info)};
    is_deeply(\%calls, {set => 1}, 'a failure settle on a key with only its reservation: one SET, no GETDEL or GET');
    is($rc->cmd('GET', '{c}:S'), '60', '  leaving the compact form');
    ok($rc->cmd('PTTL', '{c}:S') > 59000, '  for one window');

    # a settle alone in its batch on a key holding only its reservation is
    # answered before guard_batch.lua's definitions: no TIME for a success
    # (GET, DEL), one for a failure (GET, SET ... XX); a key with a history
    # leaves it to the walk, which reads it again
    my $batch1 = sub ($out, $rv, $key) {
        $rc->cmd('EVAL', $src{guard_batch}, 1, $key->[0], 60000, 1, 5, limits_of($key), 's', 1, $out, $rv, 1);
    };
    my %early;
    for my $o (qw(s f)) {
        my @E = ("{c}:E$o", 3, 60000, 60000, 1000, 0);
        my $re = $res->(60000, \@E);
        $rc->cmd('CONFIG', 'RESETSTAT');
        is($batch1->($o, $re->[3], \@E), '', "a batch of one settle ($o) on a key with only its reservation answers nothing");
        my %c = $rc->cmd('INFO', 'commandstats') =~ /^cmdstat_(\w+):calls=(\d+)/mg;
        delete @c{qw(eval evalsha config info)};
        $early{$o} = \%c;
    }
    is_deeply(\%early, {s => {get => 1, del => 1}, f => {get => 1, time => 1, set => 1}},
              '  before the definitions: a success reads and deletes, a failure reads, takes the time and writes');
    is($rc->cmd('EXISTS', '{c}:Es'), 0, '  the success leaves nothing');
    is($rc->cmd('GET', '{c}:Ef'), '60', '  the failure the compact form');
    ok($rc->cmd('PTTL', '{c}:Ef') > 59000, '  for one window');
    my @H = ('{c}:H', 3, 60000, 60000, 1000, 0);
    my $h1 = $res->(60000, \@H);
    my $h2 = $res->(60000, \@H);
    $rc->cmd('CONFIG', 'RESETSTAT');
    is($batch1->('s', $h1->[3], \@H), '', 'a settle alone on a key with another reservation too');
    my %ch = $rc->cmd('INFO', 'commandstats') =~ /^cmdstat_(\w+):calls=(\d+)/mg;
    is_deeply([@ch{qw(get getdel time)}], [1, 1, 1], '  reads it, then the walk decides (GETDEL, TIME)');
    like($rc->cmd('GET', '{c}:H'), qr/^\|\|\|\w+\|$/, '  keeping the other reservation');
    # what the walk turns down, the early path does not answer: a set number
    # naming no set, a limit that is not a number (in a set the settle does
    # not use), a reservation lifetime that is not a number; each fails the
    # call and leaves the key holding its reservation
    my @X = ('{c}:X', 3, 60000, 60000, 1000, 0);
    my $rx = $res->(60000, \@X)->[3];
    my @bad = (
        ['a set number naming no set', 60000, 1, 5, limits_of(\@X), 's', 1, 's', $rx, 2],
        ['a limit that is not a number', 60000, 2, 5, limits_of(\@X), 5, 3, 60000, 'x', 1000, 0, 's', 1, 's', $rx, 1],
        ['a lifetime that is not a number', 'x', 1, 5, limits_of(\@X), 's', 1, 'f', $rx, 1],
    );
    for my $b (@bad) {
        my ($what, @argv) = @$b;
        my $err = eval { $rc->cmd('EVAL', $src{guard_batch}, 1, '{c}:X', @argv); 1 } ? '' : $@;
        ok($err ne '', "a settle alone with $what fails the call") or diag "answered";
        is($rc->cmd('GET', '{c}:X'), "|||$rx|", '  and its key still holds its reservation');
    }
    # a key that is not a string: the walk's error, after the walk settled
    # the operations before it (the early path wrote nothing and let it)
    my @Y = ('{c}:Y', 3, 60000, 60000, 1000, 0);
    my $ry = $res->(60000, \@Y)->[3];
    $rc->cmd('HSET', '{c}:Z', 'f', 'v');
    my $err = eval { $rc->cmd('EVAL', $src{guard_batch}, 2, '{c}:Y', '{c}:Z', 60000, 1, 5, limits_of(\@Y),
                              's', 1, 's', $ry, 1, 's', 1, 's', $ry + 1, 1); 1 } ? '' : $@;
    like($err, qr/WRONGTYPE/, 'settles alone beside a key that is not a string: the walk\'s error');
    is($rc->cmd('EXISTS', '{c}:Y'), 0, '  after settling the one before it, as the walk does');

    # two requests in flight on one key: the first one's failure replaces
    # the key for the moment of the script, then writes back what it read
    # with its failure added, the other reservation kept
    my @T = ('{c}:T', 3, 60000, 60000, 1000, 0);
    my $q1 = $res->(60000, \@T);
    my $q2 = $res->(60000, \@T);
    $set->('f', $q1->[3], \@T);
    my $tv = $rc->cmd('GET', '{c}:T');
    like($tv, qr/^\|\|\|\w+\|\w+$/, "a failure beside another request's reservation: both kept ($tv)");
    is($res->(60000, \@T)->[0], 0, '  a third request is allowed (1 failure + 1 reservation of 3)');
    is($res->(60000, \@T)->[0], 2, '  a fourth waits (1 failure + 2 reservations)');
    $set->('s', $q2->[3], \@T);
    unlike($rc->cmd('GET', '{c}:T') // '', qr/\|\w+$/, '  a success clears the failures');

    # a failure whose key is gone (its reservation expired): XX creates
    # nothing, the failure is stored compact
    my @U = ('{c}:U', 3, 60000, 60000, 1000, 0);
    my $ru = $res->(60000, \@U);
    $rc->cmd('DEL', '{c}:U');
    $set->('f', $ru->[3], \@U);
    is($rc->cmd('GET', '{c}:U'), '60', 'a failure on a vanished key: stored compact all the same');

    # a lock that started while this request was in flight (here: a dry
    # run's failure under max_failures=1, as after a reload) survives this
    # request's failure settle: the key is written back with the lock
    my @V = ('{c}:V', 3, 60000, 60000, 1000, 0);
    my @V1 = ('{c}:V', 1, 60000, 60000, 1000, 0);
    my $v1 = $res->(60000, \@V);
    $set->('f', 0, \@V1);
    my $lockv = $rc->cmd('GET', '{c}:V');
    # (the reservation in flight stays: that failure drops nothing for itself)
    like($lockv, qr/^\w+\|1\|\w+\|\w+\|$/, "another request's failure locks the key, the reservation kept ($lockv)");
    $set->('f', $v1->[3], \@V);
    is($rc->cmd('GET', '{c}:V'), $lockv =~ s/\|\w+\|$/||/r,
       '  the late failure settle writes the lock back as it was, without its own reservation');
    ok($rc->cmd('PTTL', '{c}:V') > 100000, '  with its lifetime');
    is($res->(60000, \@V)->[0], 1, '  and the key still refuses');

    # a failure whose reservation ran out (an upstream slower than the
    # reservation's 60 s) while other requests fill the budget: it counts,
    # and drops neither their reservations nor an earlier failure
    my @W = ('{c}:W', 3, 60000, 60000, 1000, 0);
    $set->('f', $res->(60000, \@W)->[3], \@W);
    my ($w2, $w3) = map { $res->(60000, \@W) } 1, 2;
    is($res->(60000, \@W)->[0], 2, 'one failure and two reservations fill a budget of 3');
    $set->('f', 12345, \@W);
    like($rc->cmd('GET', '{c}:W'), qr/^\|\|\|\w+,\w+\|\w+,\w+$/,
         '  a settle whose reservation is gone: its failure counts, both reservations stay');
    is_deeply($set->('f', $w2->[3], \@W), [1, 60000], '  the next failure is the third: a lock');

    my @I = ('{c}:I', 5, 60000, 60000, 1000, 0);
    $guess->(\@I);
    is_deeply($rc->cmd('EVAL', script('guard_inspect'), 1, '{c}:I'), [0, 1], 'pairguardctl\'s inspect reads the compact form: one failure');
}

# The early settle path against the walk, at random: the same settle-only
# batches (1 to 5 settles of 4 keys, duplicates allowed) on keys in every
# state (absent, holding its own reservation, two, another's, a compact
# failure, a long value, a hash), with random outcomes, reservations and
# limits, run by guard_batch.lua and by a copy whose early path is turned
# off, on two Redis from the same state: the same answers, values and
# expiries. A change to the walk's fast path that the early path does not
# follow fails here.
{
    (my $noearly = $src{guard_batch}) =~ s/^if not early_now then$/if false then/m
        or die "guard_batch.t: the early path's opening line moved\n";
    my ($ra, $rb) = (start_redis(), start_redis());
    my %sha = (a => $ra->cmd('SCRIPT', 'LOAD', $src{guard_batch}), b => $rb->cmd('SCRIPT', 'LOAD', $noearly));
    srand(20261203);
    my $pick = sub (@x) { $x[int rand @x] };
    my @pool = map { "{x}:k$_" } 1 .. 4;
    my $near = sub ($x, $y) {   # the same text, its times within 50 ms
        my @x = split /([|, ])/, $x // '', -1;
        my @y = split /([|, ])/, $y // '', -1;
        return 0 if @x != @y;
        for my $i (0 .. $#x) {
            next if $x[$i] eq $y[$i];
            return 0 unless $x[$i] =~ /^(\d{13}|[0-9a-z]{8})$/ && $y[$i] =~ /^(\d{13}|[0-9a-z]{8})$/;
            my $v = sub ($t) { $t =~ /^\d{13}$/ ? $t : do { my $n = 0; $n = $n * 36 + index('0123456789abcdefghijklmnopqrstuvwxyz', $_) for split //, $t; $n } };
            return 0 if abs($v->($x[$i]) - $v->($y[$i])) > 50;
        }
        return 1;
    };
    my ($differ, $early, $runs) = (0, 0, 300);
    for my $run (1 .. $runs) {
        my ($sec, $usec) = @{ $ra->cmd('TIME') };
        my $now = $sec * 1000 + int($usec / 1000);
        my %res = map { $_ => $now + 60000 + int rand 4 } @pool;
        my %state = map { $_ => $pick->(qw(absent own own own own2 other compact long hash)) } @pool;
        my @sets = map { [$pick->(0, 1, 2, 3, 5), $pick->(1000, 1500, 5000, 60000, 9999000, 10000000), 60000, 1000, 0] } 1 .. $pick->(1, 1, 2);
        my (@keys, @ops);
        for (1 .. $pick->(1, 2, 3, 4, 4, 5)) {
            my $k = $pick->(@pool);
            push @keys, $k;
            push @ops, 's', 1, $pick->(qw(f f s n)), $pick->($res{$k}, $res{$k}, $res{$k}, 0, $res{$k} + 1), 1 + int rand @sets;
        }
        my @argv = (60000, scalar(@sets), map { (scalar(@$_), @$_) } @sets);
        $early++ if !grep { $state{$_} ne 'own' } @keys;
        my @seen;
        for my $x ([$ra, 'a'], [$rb, 'b']) {
            my ($rd, $which) = @$x;
            $rd->cmd('FLUSHALL');
            for my $k (@pool) {
                my $st = $state{$k};
                $rd->cmd('SET', $k, "|||$res{$k}|", 'PX', 60000) if $st eq 'own';
                $rd->cmd('SET', $k, "|||$res{$k},$res{$k}|", 'PX', 60000) if $st eq 'own2';
                $rd->cmd('SET', $k, '|||' . ($now + 59000) . '|', 'PX', 60000) if $st eq 'other';
                $rd->cmd('SET', $k, '5', 'PXAT', $now + 3000) if $st eq 'compact';
                $rd->cmd('SET', $k, '||||', 'PX', 60000) if $st eq 'long';
                $rd->cmd('HSET', $k, 'a', 'b') if $st eq 'hash';
            }
            my $reply = eval { $rd->cmd('EVALSHA', $sha{$which}, scalar(@keys), @keys, @argv, @ops) } // do { my $e = $@; $e =~ s/script: \w+//; "ERR $e" };
            my @snap = map { my $t = $rd->cmd('TYPE', $_); [$t eq 'string' ? $rd->cmd('GET', $_) : $t, $rd->cmd('PEXPIRETIME', $_)] } @pool;
            push @seen, [$reply, @snap];
        }
        my ($a, $b) = @seen;
        my $same = $near->($a->[0], $b->[0]);
        for my $i (1 .. @pool) {
            $same &&= $near->($a->[$i][0], $b->[$i][0])
                && ($a->[$i][1] < 0) == ($b->[$i][1] < 0) && abs($a->[$i][1] - $b->[$i][1]) <= 50;
        }
        next if $same;
        diag("differs: states @{[map { $state{$_} } @pool]}, keys @keys, ARGV @argv @ops: "
             . join(' / ', map { join(' ', map { ref $_ ? "@$_" : $_ } @$_) } @seen)) if $differ++ < 3;
    }
    is($differ, 0, "$runs random settle-only batches: the early path answers and writes as the walk does");
    cmp_ok($early, '>=', 5, "  $early of them eligible for it (every key holding its own reservation)");
}

# two nodes, two workers each, batching at once
my $up = start_upstream(delay_ms => 100);
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=1s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy code key=$http_x_code max_failures=5 window=30s lockout=30s;
    pairguard_policy ip   key=$http_x_client max_failures=1000 window=30s lockout=30s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /guess { pairguard ip; pairguard code; proxy_pass http://backend/status/404; }
    }
}
CONF
my $r = start_redis();
my @nodes = map { start_nginx($conf, redis => $r, upstream => $up, workers => 2) } 1 .. 2;
my @ports = map { $_->port } @nodes;
$r->cmd('CONFIG', 'RESETSTAT');
my @res = http_burst_responses(\@ports, 300, sub ($i) {
    { method => 'POST', path => '/guess', headers => { 'X-Code' => 'c-' . ($i % 3), 'X-Client' => "cl-$i" } }
});
is(scalar(grep { $_->{timeout} || !$_->{status} } @res), 0, 'three hundred guesses on two nodes are all answered');
is($up->count('/status/404'), 15, 'exactly max_failures per code (3 x 5) reached the upstream');
my $info = $r->cmd('INFO', 'commandstats');
my ($calls) = $info =~ /cmdstat_evalsha:calls=(\d+)/;
$calls //= 0;
my ($evals) = $info =~ /cmdstat_eval:calls=(\d+)/;
$calls += $evals // 0;
if (($ENV{PG_REDIS_MODE} // '') eq 'cluster') {
    # every key is its own hash tag: a batch splits by slot, so the two
    # keys of a guess are two calls (more calls than operations), and a
    # reserve refused on one slot releases the other's part (one call more)
    cmp_ok($calls, '<=', 2 * (300 + 15) + 300,
        "Redis Cluster: $calls script calls, at most one per slot part of each operation and release");
} else {
    cmp_ok($calls, '<', 300 + 15, "fewer script calls ($calls) than reserves and settles (315)");
}
done();
