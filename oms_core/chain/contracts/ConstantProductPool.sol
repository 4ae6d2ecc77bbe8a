// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

interface IToken {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title ConstantProductPool — an x·y = k pool of two ERC-20 tokens with a 0.3 % input fee.
/// @notice The pool the DeFi scenario deposits into, and whose reserves the OMS reads to show
///         price impact before signing. Every value-moving function takes a caller minimum and
///         reverts with a "slippage: …" reason below it, so a simulated eth_call explains a
///         block in words. Reserves are the pool's own books: tokens sent to it directly are
///         ignored (donations), which keeps getReserves() the only input of the price.
contract ConstantProductPool {
    uint256 public constant FEE_NUMERATOR = 997; // 0.3 % of the input stays in the pool
    uint256 public constant FEE_DENOMINATOR = 1000;

    address public immutable token0;
    address public immutable token1;
    uint256 private reserve0;
    uint256 private reserve1;
    uint256 public totalShares;
    mapping(address => uint256) public sharesOf;
    uint256 private unlocked = 1; // reentrancy guard: tokens are external code

    event Deposit(address indexed provider, uint256 amount0, uint256 amount1, uint256 shares);
    event Withdraw(address indexed provider, uint256 amount0, uint256 amount1, uint256 shares);
    event Swap(address indexed trader, address indexed tokenIn, uint256 amountIn,
               uint256 amountOut);
    event Sync(uint256 reserve0, uint256 reserve1);

    modifier locked() {
        require(unlocked == 1, "pool: reentrant call");
        unlocked = 0;
        _;
        unlocked = 1;
    }

    constructor(address token0_, address token1_) {
        require(token0_ != address(0) && token1_ != address(0), "pool: zero token address");
        require(token0_ != token1_, "pool: identical tokens");
        token0 = token0_;
        token1 = token1_;
    }

    function getReserves() external view returns (uint256, uint256) {
        return (reserve0, reserve1);
    }

    /// @notice What swap() would pay now for amountIn of tokenIn (fee included).
    function getAmountOut(address tokenIn, uint256 amountIn) public view returns (uint256) {
        (uint256 reserveIn, uint256 reserveOut,) = _sides(tokenIn);
        require(reserveIn > 0 && reserveOut > 0, "pool: no liquidity");
        return _amountOut(amountIn, reserveIn, reserveOut);
    }

    /// @notice Add both tokens. The first deposit sets the price and mints sqrt(amount0·amount1)
    ///         shares; later ones mint in proportion to the scarcer side and take only the
    ///         matching amount of the other token.
    function deposit(uint256 amount0, uint256 amount1, uint256 minShares)
        external locked returns (uint256 shares)
    {
        require(amount0 > 0 && amount1 > 0, "pool: zero amount");
        uint256 used0 = amount0;
        uint256 used1 = amount1;
        if (totalShares == 0) {
            shares = _sqrt(amount0 * amount1);
        } else {
            shares = _min(amount0 * totalShares / reserve0, amount1 * totalShares / reserve1);
            used0 = _ceilDiv(shares * reserve0, totalShares);
            used1 = _ceilDiv(shares * reserve1, totalShares);
        }
        require(shares > 0, "pool: deposit too small");
        require(shares >= minShares, "slippage: shares below minimum");
        _pull(token0, used0);
        _pull(token1, used1);
        _mint(used0, used1, shares);
    }

    /// @notice Add one token only: the pool swaps the part of amountIn that balances the rest
    ///         at the post-swap price (x·y = k with the fee), then mints shares for both parts.
    ///         The swapped part moves the price, so a large single-sided deposit loses value to
    ///         price impact; minShares bounds that loss.
    function depositSingle(address tokenIn, uint256 amountIn, uint256 minShares)
        external locked returns (uint256 shares)
    {
        require(amountIn > 0, "pool: zero amount");
        (uint256 reserveIn, uint256 reserveOut, bool isToken0) = _sides(tokenIn);
        require(totalShares > 0, "pool: no liquidity");
        uint256 swapped = _singleSidedSwapAmount(reserveIn, amountIn);
        uint256 bought = _amountOut(swapped, reserveIn, reserveOut);
        shares = _min((amountIn - swapped) * totalShares / (reserveIn + swapped),
                      bought * totalShares / (reserveOut - bought));
        require(shares > 0, "pool: deposit too small");
        require(shares >= minShares, "slippage: shares below minimum");
        _pull(tokenIn, amountIn);
        if (isToken0) {
            _mint(amountIn, 0, shares);
        } else {
            _mint(0, amountIn, shares);
        }
    }

    function withdraw(uint256 shares, uint256 minAmount0, uint256 minAmount1)
        external locked returns (uint256 amount0, uint256 amount1)
    {
        require(shares > 0, "pool: zero amount");
        require(sharesOf[msg.sender] >= shares, "pool: shares exceed balance");
        amount0 = shares * reserve0 / totalShares;
        amount1 = shares * reserve1 / totalShares;
        require(amount0 >= minAmount0 && amount1 >= minAmount1,
                "slippage: amounts below minimum");
        sharesOf[msg.sender] -= shares;
        totalShares -= shares;
        reserve0 -= amount0;
        reserve1 -= amount1;
        emit Withdraw(msg.sender, amount0, amount1, shares);
        emit Sync(reserve0, reserve1);
        _push(token0, amount0);
        _push(token1, amount1);
    }

    function swap(address tokenIn, uint256 amountIn, uint256 minAmountOut)
        external locked returns (uint256 amountOut)
    {
        require(amountIn > 0, "pool: zero amount");
        (uint256 reserveIn, uint256 reserveOut, bool isToken0) = _sides(tokenIn);
        require(reserveIn > 0 && reserveOut > 0, "pool: no liquidity");
        amountOut = _amountOut(amountIn, reserveIn, reserveOut);
        require(amountOut >= minAmountOut, "slippage: output below minimum");
        require(amountOut > 0, "pool: output is zero");
        _pull(tokenIn, amountIn);
        if (isToken0) {
            reserve0 += amountIn;
            reserve1 -= amountOut;
        } else {
            reserve1 += amountIn;
            reserve0 -= amountOut;
        }
        emit Swap(msg.sender, tokenIn, amountIn, amountOut);
        emit Sync(reserve0, reserve1);
        _push(isToken0 ? token1 : token0, amountOut);
    }

    function _sides(address tokenIn) private view returns (uint256, uint256, bool) {
        if (tokenIn == token0) return (reserve0, reserve1, true);
        require(tokenIn == token1, "pool: token not in this pool");
        return (reserve1, reserve0, false);
    }

    /// @dev out = in·f·R_out / (R_in + in·f) with f = 997/1000: (R_in + in·f)(R_out − out) ≥ k.
    function _amountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut)
        private pure returns (uint256)
    {
        uint256 inAfterFee = amountIn * FEE_NUMERATOR;
        return inAfterFee * reserveOut / (reserveIn * FEE_DENOMINATOR + inAfterFee);
    }

    /// @dev The s that leaves (a − s)/(r + s) equal to the post-swap price: the root of
    ///      f·s² + r(1 + f)·s − r·a = 0 with f = 0.997, scaled by 1000 to stay in integers:
    ///      s = (√(r(3988009·r + 3988000·a)) − 1997·r) / 1994.
    function _singleSidedSwapAmount(uint256 reserveIn, uint256 amountIn)
        private pure returns (uint256)
    {
        uint256 root = _sqrt(reserveIn * (reserveIn * 3988009 + amountIn * 3988000));
        return (root - reserveIn * 1997) / 1994;
    }

    function _mint(uint256 added0, uint256 added1, uint256 shares) private {
        sharesOf[msg.sender] += shares;
        totalShares += shares;
        reserve0 += added0;
        reserve1 += added1;
        emit Deposit(msg.sender, added0, added1, shares);
        emit Sync(reserve0, reserve1);
    }

    function _pull(address token, uint256 amount) private {
        require(IToken(token).transferFrom(msg.sender, address(this), amount),
                "pool: token transfer failed");
    }

    function _push(address token, uint256 amount) private {
        require(IToken(token).transfer(msg.sender, amount), "pool: token transfer failed");
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }

    function _ceilDiv(uint256 a, uint256 b) private pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    /// @dev Integer square root (floor) by Newton's method.
    function _sqrt(uint256 y) private pure returns (uint256 z) {
        if (y > 3) {
            z = y;
            uint256 x = y / 2 + 1;
            while (x < z) {
                z = x;
                x = (y / x + x) / 2;
            }
        } else if (y != 0) {
            z = 1;
        }
    }
}
